import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { REPO, startGatewayFrom, type GatewayProcess } from './support/gateway-process.ts';
import { send } from './support/http.ts';
import { startUpstream, type TestUpstream } from './support/upstream.ts';

/** The ```ts file=PATH blocks of a doc, as { path: source }. */
function codeFiles(doc: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const match of readFileSync(join(REPO, doc), 'utf8').matchAll(/```ts file=(\S+)\n([\s\S]*?)```/g)) {
    files[match[1]!] = match[2]!;
  }
  return files;
}

describe('docs/plugins.md', () => {
  let upstream: TestUpstream;
  let gateway: GatewayProcess;
  let dir = '';

  before(async () => {
    upstream = await startUpstream();
    // Inside the repository, so `tollgate` and `zod` resolve as they would in a user's project.
    mkdirSync(join(REPO, '.tmp'), { recursive: true });
    dir = mkdtempSync(join(REPO, '.tmp', 'docs-'));
    const files = codeFiles('docs/plugins.md');
    expect(Object.keys(files)).to.have.members(['my-plugins/require-version.ts', 'gateway.config.ts']);
    for (const [path, source] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), source);
    }
    gateway = await startGatewayFrom(join(dir, 'gateway.config.ts'), { env: { PORT: '0', ORDERS_URL: upstream.url } });
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('forwards an accepted version upstream and reports it back', async () => {
    const res = await send(`${gateway.url}/orders/1`, { headers: { 'accept-version': '3' } });
    expect(res.status).to.equal(200);
    expect(res.headers['x-api-version']).to.equal('3');
    expect(res.headers['server-timing']).to.match(/^gateway;dur=\d+\.\d$/);
    expect(res.json().headers['x-api-version']).to.equal('3');
  });

  it('answers 400 without reaching the upstream when the version is missing', async () => {
    const before = upstream.requests.length;
    const res = await send(`${gateway.url}/orders/1`);
    expect(res.status).to.equal(400);
    expect(res.json()).to.deep.equal({ error: 'unsupported version', allowed: ['2', '3'] });
    expect(upstream.requests.length).to.equal(before);
  });

  it('falls back to the first allowed version where the route says so', async () => {
    const res = await send(`${gateway.url}/legacy/1`);
    expect(res.status).to.equal(200);
    expect(res.headers['x-api-version']).to.equal('1');
  });
});
