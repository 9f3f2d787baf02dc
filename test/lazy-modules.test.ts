import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { join } from 'node:path';
import { REPO } from './support/gateway-process.ts';

const run = promisify(execFile);

/**
 * Runs a gateway (with `config`) in a fresh node, serves one request, and lists the packages it
 * resolved: module hooks see every import, static or dynamic.
 */
async function packagesLoadedBy(config: string): Promise<string[]> {
  const script = `
    import { registerHooks } from 'node:module';
    const seen = new Set();
    registerHooks({ resolve(specifier, context, next) { if (!specifier.startsWith('.') && !specifier.startsWith('node:') && !specifier.startsWith('file:') && !specifier.startsWith('/')) seen.add(specifier); return next(specifier, context); } });
    const { createTestGateway } = await import(${JSON.stringify(join(REPO, 'core/testing/index.ts'))});
    const gw = await createTestGateway({ config: ${config} });
    const res = await gw.request('/hello');
    await gw.close();
    console.log(JSON.stringify({ status: res.status, seen: [...seen] }));
  `;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: REPO });
  const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as { status: number; seen: string[] };
  expect(result.status).to.equal(200);
  return result.seen;
}

describe('modules a worker loads', () => {
  it('loads neither the OpenTelemetry SDK nor ioredis when the config has no telemetry and no redis', async () => {
    const seen = await packagesLoadedBy('{}');
    expect(seen).to.include('undici');
    expect(seen).not.to.include('@opentelemetry/sdk-node');
    expect(seen.filter((name) => name.startsWith('@opentelemetry/exporter'))).to.deep.equal([]);
    expect(seen).not.to.include('ioredis');
  });

  it('loads the SDK once the config has telemetry', async () => {
    // The collector address is unused: no request is sampled.
    const seen = await packagesLoadedBy(`{ telemetry: { otlp: { endpoint: 'http://127.0.0.1:9' }, tracing: { sampleRatio: 0 } } }`);
    expect(seen).to.include('@opentelemetry/sdk-node');
  });
});
