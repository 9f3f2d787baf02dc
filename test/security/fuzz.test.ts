import { expect } from 'chai';
import { CORE, startGateway, type GatewayProcess } from '../support/gateway-process.ts';
import { send } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { rawExchange, statuses } from './raw-http.ts';

const CASES = Number(process.env.FUZZ_CASES ?? 600);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
const CONCURRENCY = 24;

/** mulberry32: a small seeded PRNG, so a failing run can be replayed with FUZZ_SEED. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TEMPLATES = [
  'GET /items/1?x=1 HTTP/1.1\r\nHost: gw\r\nAccept: */*\r\n\r\n',
  'POST /items HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"name":"a"}\n',
  'POST /items HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  'GET /a/b/../c/%2e%2e/%2F HTTP/1.1\r\nHost: gw\r\nConnection: keep-alive, x-forwarded-for\r\n\r\n',
  'GET /ws HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  'GET /items/1 HTTP/1.0\r\n\r\n',
  'OPTIONS * HTTP/1.1\r\nHost: gw\r\n\r\n',
  'GET http://gw/items/1 HTTP/1.1\r\nHost: gw\r\n\r\n',
];

const INTERESTING = ['\r', '\n', '\r\n', '\0', ' ', '\t', ':', '%', '%00', '%2e', '/', '\\', ';', ',', '"', '\x7f', '\xff', '\xc0\xae', '\x0b', 'Content-Length: 5\r\n', 'Transfer-Encoding: chunked\r\n', 'Host: other\r\n', '99999999999999999999', '-1', 'chunked', 'HTTP/1.1', ' HTTP/1.1\r\n'];

function mutate(input: string, random: () => number): string {
  let text = input;
  const rounds = 1 + Math.floor(random() * 4);
  for (let round = 0; round < rounds; round++) {
    const at = Math.floor(random() * (text.length + 1));
    switch (Math.floor(random() * 7)) {
      case 0: // flip a byte
        text = text.slice(0, at) + String.fromCharCode(Math.floor(random() * 256)) + text.slice(at + 1);
        break;
      case 1: // insert something parsers trip on
        text = text.slice(0, at) + INTERESTING[Math.floor(random() * INTERESTING.length)] + text.slice(at);
        break;
      case 2: // delete a run
        text = text.slice(0, at) + text.slice(at + 1 + Math.floor(random() * 8));
        break;
      case 3: // duplicate a line
        {
          const lines = text.split('\r\n');
          const line = Math.floor(random() * lines.length);
          lines.splice(line, 0, lines[line]!);
          text = lines.join('\r\n');
        }
        break;
      case 4: // truncate
        text = text.slice(0, at);
        break;
      case 5: // repeat a slice many times (long tokens, many headers)
        text = text.slice(0, at) + text.slice(at, at + 12).repeat(1 + Math.floor(random() * 400)) + text.slice(at);
        break;
      default: // pipeline another request after it
        text += TEMPLATES[Math.floor(random() * TEMPLATES.length)];
    }
  }
  return text;
}

/**
 * Mutated raw HTTP/1.1 requests, generated from a seed (printed; replay with FUZZ_SEED=n, size with
 * FUZZ_CASES=n), against two workers. No input may crash a worker, hang a connection past the
 * configured timeouts, or get back anything but well-formed HTTP/1.1 responses.
 */
describe('security: fuzzing raw HTTP/1.1', function () {
  this.timeout(180_000);
  let app: TestUpstream;
  let gateway: GatewayProcess;

  before(async () => {
    app = await startUpstream();
    gateway = await startGateway(
      `
      import { defineConfig } from '${CORE}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        server: { headersTimeout: '1s', requestTimeout: '2s', keepAliveTimeout: '500ms' },
        upstreams: { app: { targets: ['${app.url}'] } },
        routes: [{ path: '/items/*', upstream: 'app' }, { path: '/items', upstream: 'app' }, { path: '/ws', upstream: 'app' }],
      });
    `,
      { workers: 2 },
    );
  });

  after(async () => {
    await gateway?.stop();
    await app?.close();
  });

  it(`survives ${CASES} mutated requests with well-formed answers and no crash or hang`, async () => {
    console.log(`      fuzz seed ${SEED} (replay: FUZZ_SEED=${SEED} FUZZ_CASES=${CASES})`);
    const random = prng(SEED);
    const inputs = Array.from({ length: CASES }, () => mutate(TEMPLATES[Math.floor(random() * TEMPLATES.length)]!, random));
    const problems: string[] = [];
    let next = 0;
    const runOne = async (): Promise<void> => {
      while (next < inputs.length) {
        const input = inputs[next++]!;
        const { text, timedOut } = await rawExchange(gateway.port, Buffer.from(input, 'latin1'), 10_000);
        if (timedOut) problems.push(`hung: ${JSON.stringify(input.slice(0, 300))}`);
        // An upgrade the upstream refused may carry a non-HTTP tail; everything else must parse.
        try {
          for (const status of statuses(text)) if (status < 100 || status > 599) throw new Error(`status ${status}`);
        } catch (error) {
          problems.push(`${(error as Error).message} for ${JSON.stringify(input.slice(0, 300))}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, runOne));
    expect(problems, problems.slice(0, 5).join('\n')).to.deep.equal([]);
    for (const pid of gateway.workerPids) expect(() => process.kill(pid, 0), `worker ${pid} died`).to.not.throw();
    expect(gateway.logs.filter((line) => /respawning/.test(line.msg ?? '')), 'a worker was replaced').to.deep.equal([]);
    expect((await send(`${gateway.url}/items/1`)).status).to.equal(200);
  });
});
