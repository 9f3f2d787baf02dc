import { expect } from 'chai';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout } from 'node:timers/promises';
import { Pool } from 'undici';
import { noteBodyBytes, startBodyScavenges } from '../core/http/body-scavenges.ts';
import { workerExecArgv } from '../core/cluster/worker-v8-flags.ts';
import { CORE, REPO, startGateway, startGatewayFrom, writeConfig, type GatewayProcess } from './support/gateway-process.ts';
import { send } from './support/http.ts';
import { startUpstream, type TestUpstream } from './support/upstream.ts';

describe('body scavenges', () => {
  describe('pacing', () => {
    let stop: (() => void) | undefined;
    // The pacing is process-wide: leave it off for the other tests in this process.
    afterEach(() => stop?.());

    it('asks for a young-generation collection once unfreed memory grew by the budget while bodies were read', () => {
      let collections = 0;
      let external = 50_000; // V8's external memory, as the pacing reads it
      stop = startBodyScavenges(1000, () => collections++, () => external);
      // Bodies read and nothing freed: external memory grows with them. It is looked at every 250 bytes.
      const read = (bytes: number): void => {
        external += bytes;
        noteBodyBytes(bytes);
      };
      read(250); // the first look sets the low point
      read(750);
      expect(collections).to.equal(0);
      read(250); // 1,000 above the low point
      expect(collections).to.equal(1);
      external = 50_000; // the scavenge freed them
      read(250); // the look after a scavenge sets the low point again
      read(750);
      expect(collections).to.equal(1);
      read(250);
      expect(collections).to.equal(2);
    });

    it('asks for none while V8 frees the memory on its own (JavaScript that allocates enough scavenges by itself)', () => {
      let collections = 0;
      let external = 50_000;
      stop = startBodyScavenges(1000, () => collections++, () => external);
      for (let i = 0; i < 100; i++) {
        external += 250;
        noteBodyBytes(250);
        if (i % 3 === 2) external = 50_000; // V8's own scavenge freed them
      }
      expect(collections).to.equal(0);
    });

    it('reads V8\'s external memory only every quarter budget of body bytes', () => {
      let reads = 0;
      stop = startBodyScavenges(4000, () => {}, () => reads++);
      for (let i = 0; i < 100; i++) noteBodyBytes(100); // 10,000 bytes: ten quarters
      expect(reads).to.equal(10);
    });

    /** Runs the pacing in a fresh node started with `flags`: did a scavenge happen, and which gc globals are left. */
    const scavengeIn = (flags: string[]): { minor: boolean; own: string; gc: string } => {
      const script = `
        import { constants, PerformanceObserver } from 'node:perf_hooks';
        import { noteBodyBytes, startBodyScavenges } from '${pathToFileURL(join(REPO, 'core/http/body-scavenges.ts')).href}';
        let external = 0;
        startBodyScavenges(1000, undefined, () => external);
        const seen = [];
        new PerformanceObserver((list) => {
          // Forced: the one asked for, not one V8 made on its own.
          for (const entry of list.getEntries()) if (entry.detail.flags & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED) seen.push(entry.detail.kind);
        }).observe({ entryTypes: ['gc'] });
        noteBodyBytes(250);
        external = 1000;
        noteBodyBytes(250);
        setTimeout(() => console.log(JSON.stringify({ minor: seen.includes(constants.NODE_PERFORMANCE_GC_MINOR), own: typeof globalThis.__tollgate_gc, gc: typeof globalThis.gc })), 50);
      `;
      const child = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', script], { encoding: 'utf8' });
      expect(child.stderr).to.equal('');
      return JSON.parse(child.stdout) as { minor: boolean; own: string; gc: string };
    };

    it('collects with a real scavenge through the gc a worker is started with, and empties that global', () => {
      // Started as the primary starts its workers (worker-v8-flags.ts).
      expect(scavengeIn(workerExecArgv([]))).to.deep.equal({ minor: true, own: 'undefined', gc: 'undefined' });
    });

    it("uses an operator's own --expose-gc and leaves their gc in place", () => {
      expect(scavengeIn(workerExecArgv(['--expose-gc']))).to.deep.equal({ minor: true, own: 'undefined', gc: 'function' });
    });

    it('does nothing in a process that has no gc function (one not started as a worker)', () => {
      stop = startBodyScavenges(1000);
      expect(() => noteBodyBytes(5000)).to.not.throw();
    });
  });

  describe('in a worker', () => {
    const MiB2 = Buffer.alloc(2 * 1024 * 1024, 'x');
    let upstream: TestUpstream;
    let gateway: GatewayProcess;
    let pool: Pool;
    let sockets: WebSocketServer;
    let tunnelled = 0;

    before(async () => {
      upstream = await startUpstream((req, res) => {
        req.resume();
        req.on('end', () => res.end(req.url === '/download' ? MiB2 : 'ok'));
      });
      sockets = new WebSocketServer({ port: 0, host: '127.0.0.1' });
      sockets.on('connection', (socket) => socket.on('message', (data: Buffer) => (tunnelled += data.length)));
      await once(sockets, 'listening');
      gateway = await startGateway(
        `
        import { defineConfig, definePlugin } from '${CORE}';
        // Reads the body whole and does nothing else with it: no JavaScript garbage of its own.
        const reader = (shared: boolean) => definePlugin({
          name: shared ? 'read-shared' : 'read-whole',
          version: '1.0.0',
          setup: () => ({ onRequest: async (ctx) => { await ctx.request.body(4 * 1024 * 1024, { shared }); } }),
        });
        const readShared = reader(true);
        const readWhole = reader(false);
        export default defineConfig({
          listen: { port: 0, host: '127.0.0.1' },
          log: { accessLog: false },
          upstreams: { sink: { targets: ['${upstream.url}'] }, sockets: { targets: ['http://127.0.0.1:${(sockets.address() as AddressInfo).port}'] } },
          routes: [
            { path: '/upload', methods: ['POST'], upstream: 'sink' },
            { path: '/read-shared', methods: ['POST'], upstream: 'sink', plugins: [readShared()] },
            { path: '/read-whole', methods: ['POST'], upstream: 'sink', plugins: [readWhole()] },
            { path: '/download', methods: ['GET'], upstream: 'sink' },
            { path: '/ws', upstream: 'sockets' },
          ],
        });
      `,
        { env: { NODE_OPTIONS: `--import=${pathToFileURL(join(REPO, 'test/fixtures/gc-counts.mjs')).href}` } },
      );
      pool = new Pool(gateway.url, { connections: 4 });
    });
    after(async () => {
      await pool?.close();
      await gateway?.stop();
      await upstream?.close();
      await new Promise((resolve) => sockets?.close(resolve));
    });

    let asked = 0;
    const collections = async (): Promise<{ minor: number; major: number }> => {
      const n = ++asked;
      process.kill(gateway.workerPids[0]!, 'SIGUSR2');
      const line = await gateway.waitForLog((l) => l.msg === 'gc counts' && l.n === n);
      return { minor: line.minor as number, major: line.major as number };
    };

    /**
     * 80 transfers of 2 MiB, 20 a second for 4 s, and the worker's collections meanwhile. Such
     * bodies allocate next to no JavaScript: left to V8's pacing, their buffers set off full
     * collections (checked for uploads: 10 in 4 s without the pacing, and 4-5 young-generation ones).
     */
    const collectionsAround = async (transfer: () => Promise<void>): Promise<{ minor: number; major: number }> => {
      await transfer();
      const before = await collections();
      for (let i = 0; i < 80; i++) {
        await transfer();
        await setTimeout(50);
      }
      const after = await collections();
      return { minor: after.minor - before.minor, major: after.major - before.major };
    };

    const expectYoungCollectionsAround = async (transfer: () => Promise<void>): Promise<void> => {
      const made = await collectionsAround(transfer);
      expect(made.minor, 'young-generation collections: one per 4-8 MiB').to.be.at.least(20);
      // Without the pacing: ~10. One suite run on a busy machine saw 2 (a collection V8 schedules
      // for its own reasons lands in the window now and then).
      expect(made.major, 'full collections').to.be.at.most(2);
    };

    const exchange = (path: string, method: 'GET' | 'POST') => async (): Promise<void> => {
      const res = await pool.request({ path, method, ...(method === 'POST' ? { body: MiB2 } : {}) });
      await res.body.dump();
      expect(res.statusCode).to.equal(200);
    };

    it('frees streamed uploads with young-generation collections instead of full mark-compacts', async () => {
      await expectYoungCollectionsAround(exchange('/upload', 'POST'));
    });

    it('frees uploads a plugin reads whole into shared memory (for offload tasks) the same way', async () => {
      await expectYoungCollectionsAround(exchange('/read-shared', 'POST'));
    });

    it('asks for none while a plugin holds a body read into a regular Buffer, which they would promote', async () => {
      // Measured: counted like the others, these uploads set off 36 full collections in 4 s
      // (their buffers promoted by the scavenges asked for while in flight); not counted, 8.
      const made = await collectionsAround(exchange('/read-whole', 'POST'));
      expect(made.major, 'full collections').to.be.at.most(20);
    });

    it('frees streamed downloads with fewer full collections, though not all of them', async () => {
      // Measured: 4 young and 7 full collections without the counting of response bodies, 8-12
      // and 2-3 with it. Less of a download's memory is freed young (docs/benchmarks.md#large-bodies).
      const made = await collectionsAround(exchange('/download', 'GET'));
      expect(made.minor, 'young-generation collections').to.be.at.least(6);
      expect(made.major, 'full collections').to.be.at.most(4);
    });

    it('frees the bytes of WebSocket tunnels the same way', async () => {
      const client = new WebSocket(`${gateway.url.replace('http:', 'ws:')}/ws`);
      await once(client, 'open');
      let sent = 0;
      try {
        await expectYoungCollectionsAround(async () => {
          client.send(MiB2);
          sent += MiB2.length;
          while (tunnelled < sent) await setTimeout(5);
        });
      } finally {
        client.close();
      }
    });
  });

  it('leaves no gc function where plugins or offload tasks would find it', async () => {
    const config = writeConfig(`
      import { defineConfig, definePlugin, reply } from '${CORE}';
      const gcReport = definePlugin({
        name: 'gc-report',
        version: '1.0.0',
        setup: async (_options, gw) => {
          const task = await gw.offload.task<() => string[]>(new URL('./gc-globals.ts', import.meta.url));
          const here = (): string[] => [typeof (globalThis as any).__tollgate_gc, typeof (globalThis as any).gc];
          return { onRequest: async () => reply.json(200, { worker: here(), thread: await task.run(undefined as never, { mode: 'thread' }) }) };
        },
      });
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        upstreams: { app: { targets: ['http://127.0.0.1:9'] } },
        routes: [{ path: '/gc', upstream: 'app', plugins: [gcReport()] }],
      });
    `);
    writeFileSync(join(dirname(config), 'gc-globals.ts'), 'export default (): string[] => [typeof (globalThis as any).__tollgate_gc, typeof (globalThis as any).gc];\n');
    const gateway = await startGatewayFrom(config);
    try {
      const res = await send(`${gateway.url}/gc`);
      expect(res.status).to.equal(200);
      expect(res.json()).to.deep.equal({ worker: ['undefined', 'undefined'], thread: ['undefined', 'undefined'] });
    } finally {
      await gateway.stop();
    }
  });
});
