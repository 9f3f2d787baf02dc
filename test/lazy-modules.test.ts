import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { join } from 'node:path';
import { REPO } from './support/gateway-process.ts';

const run = promisify(execFile);

/**
 * Runs a gateway (with `config`, and `plugins` on its route) in a fresh node, serves one request,
 * and lists the packages it resolved: module hooks see every import, static or dynamic. The bundled
 * plugins are imported, as a config file that uses any of them does. The request must get `status`.
 */
async function packagesLoadedBy(config: string, plugins = '[]', status = 200): Promise<string[]> {
  const script = `
    import { registerHooks } from 'node:module';
    const seen = new Set();
    registerHooks({ resolve(specifier, context, next) { if (!specifier.startsWith('.') && !specifier.startsWith('node:') && !specifier.startsWith('file:') && !specifier.startsWith('/')) seen.add(specifier); return next(specifier, context); } });
    const { createTestGateway } = await import(${JSON.stringify(join(REPO, 'core/testing/index.ts'))});
    const { jwtAuth, validate } = await import(${JSON.stringify(join(REPO, 'plugins/index.ts'))});
    const gw = await createTestGateway({ config: ${config}, plugins: ${plugins} });
    const res = await gw.request('/hello');
    await gw.close();
    console.log(JSON.stringify({ status: res.status, seen: [...seen] }));
  `;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: REPO });
  const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as { status: number; seen: string[] };
  expect(result.status).to.equal(status);
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

  it('loads neither jose, ajv, yaml nor piscina until a route uses jwtAuth, validate, a YAML document or offloading', async () => {
    const seen = await packagesLoadedBy('{}');
    expect(seen).to.include('zod');
    expect(seen.filter((name) => ['jose', 'ajv', 'ajv-formats', 'yaml', 'piscina'].includes(name) || name.startsWith('ajv/'))).to.deep.equal([]);
  });

  it('loads jose with the first jwtAuth, and ajv and piscina with the first validate', async () => {
    // The request has no token: 401, but both plugins were set up.
    const seen = await packagesLoadedBy('{}', `[jwtAuth({ algorithms: ['HS256'], secret: 'a-secret-of-at-least-32-characters!!' }), validate({ schemas: { query: { type: 'object' } } })]`, 401);
    expect(seen).to.include.members(['jose', 'ajv', 'piscina']);
  });
});
