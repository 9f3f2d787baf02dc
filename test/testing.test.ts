import { expect } from 'chai';
import { z } from 'zod';
import { definePlugin, GatewayError, reply } from '../core/index.ts';
import { createTestGateway, type TestGateway } from '../core/testing/index.ts';
import { rateLimit } from '../plugins/index.ts';

declare module '../core/index.ts' {
  interface RequestState {
    tenant?: string;
  }
}

// A plugin as an author would write it: stamps a tenant header, refuses requests without one.
const stampTenant = definePlugin({
  name: 'stamp-tenant',
  version: '1.0.0',
  options: z.strictObject({ header: z.string().default('x-tenant'), seen: z.custom<string[]>(Array.isArray) }),
  setup(opts) {
    return {
      onRequest(ctx) {
        const tenant = ctx.request.headers[opts.header];
        if (typeof tenant !== 'string') throw new GatewayError('TG_ERR_FORBIDDEN', 'a tenant is required', { status: 400 });
        if (tenant === 'blocked') return reply.json(403, { error: 'tenant suspended' });
        opts.seen.push(tenant);
        ctx.upstreamRequest.headers.set('x-tenant-id', tenant.toUpperCase());
      },
      onResponse(_ctx, response) {
        response.headers.set('x-stamped', 'yes');
      },
    };
  },
});

describe('createTestGateway (tollgate/testing)', () => {
  let gw: TestGateway;
  const seen: string[] = [];

  before(async () => {
    gw = await createTestGateway({ plugins: [stampTenant({ header: 'x-tenant', seen })] });
  });
  after(async () => {
    await gw?.close();
  });

  it("runs the plugin's hooks in the test's process, in front of a stub upstream that records what it got", async () => {
    const res = await gw.request('/orders/1?x=1', { headers: { 'x-tenant': 'acme' } });
    expect(res.status).to.equal(200);
    expect(res.headers['x-stamped']).to.equal('yes');
    expect(res.json()).to.deep.include({ method: 'GET', url: '/orders/1?x=1' });
    expect(gw.upstreamRequests.at(-1)!.headers['x-tenant-id']).to.equal('ACME');
    expect(seen).to.deep.equal(['acme']);
  });

  it('shows early answers and coded errors as a client would get them, without reaching the upstream', async () => {
    const before = gw.upstreamRequests.length;
    const blocked = await gw.request('/x', { headers: { 'x-tenant': 'blocked' } });
    expect(blocked.status).to.equal(403);
    expect(blocked.json()).to.deep.equal({ error: 'tenant suspended' });
    const missing = await gw.request('/x');
    expect(missing.status).to.equal(400);
    expect(missing.json().error.code).to.equal('TG_ERR_FORBIDDEN');
    expect(gw.upstreamRequests.length).to.equal(before);
  });

  it('passes request bodies through and takes a custom upstream and bundled plugins', async () => {
    const custom = await createTestGateway({
      plugins: [rateLimit({ limit: 1, window: '1m', by: 'route' })],
      upstream: (req, res) => res.writeHead(201, { 'content-type': 'text/plain' }).end(`got ${req.body}`),
    });
    try {
      const first = await custom.request('/things', { method: 'POST', body: 'a body' });
      expect([first.status, first.text]).to.deep.equal([201, 'got a body']);
      expect((await custom.request('/things')).status).to.equal(429);
    } finally {
      await custom.close();
    }
  });
});

describe('tollgate new plugin', () => {
  it('scaffolds a plugin whose generated test passes as generated', async () => {
    const { mkdirSync, mkdtempSync, readdirSync, rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { spawnSync } = await import('node:child_process');
    const { REPO, runCli } = await import('./support/gateway-process.ts');
    // Inside the repository, so that the generated imports of 'tollgate' resolve as in a user's project.
    mkdirSync(join(REPO, '.tmp'), { recursive: true });
    const dir = mkdtempSync(join(REPO, '.tmp', 'scaffold-'));
    try {
      const made = await runCli(['new', 'plugin', 'stamp-tenant', '--dir', join(dir, 'plugins')]);
      expect(made.code, made.stderr).to.equal(0);
      expect(readdirSync(join(dir, 'plugins/stamp-tenant')).sort()).to.deep.equal(['README.md', 'index.ts', 'stamp-tenant.test.ts']);
      const mocha = join(REPO, 'node_modules/mocha/bin/mocha.js');
      const run = spawnSync(process.execPath, [mocha, '--no-config', '--extension', 'ts', join(dir, 'plugins/stamp-tenant/stamp-tenant.test.ts')], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
      expect(run.status, run.stdout + run.stderr).to.equal(0);
      expect(run.stdout).to.include('2 passing');
      const again = await runCli(['new', 'plugin', 'stamp-tenant', '--dir', join(dir, 'plugins')]);
      expect(again.code).to.equal(1);
      expect((await runCli(['new', 'plugin', 'Bad_Name'])).code).to.equal(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('createTestGateway with a plugin that fails to set up', () => {
  it('rejects with the setup error and leaves nothing running', async () => {
    const broken = definePlugin({
      name: 'broken',
      version: '1.0.0',
      setup() {
        throw new Error('no database');
      },
    });
    const error = await createTestGateway({ plugins: [broken()] }).catch((e: Error) => e);
    expect(String(error)).to.include('setup failed: no database');
  });
});

describe('gw.metrics and gw.tracer', () => {
  it('give a plugin Prometheus metrics of its own (one per name) and a tracer to start spans with', async () => {
    const { default: client } = await import('prom-client');
    const sameCounter: boolean[] = [];
    const counting = definePlugin({
      name: 'counting',
      version: '2.1.0',
      setup(_opts, gw) {
        const seen = gw.metrics.counter('counting_requests_total', 'Requests the counting plugin saw.', ['method']);
        const again = gw.metrics.counter('counting_requests_total', 'asked twice: the same counter', ['method']);
        sameCounter.push(seen === again);
        return {
          onRequest(ctx) {
            seen.inc({ method: ctx.request.method });
            const span = gw.tracer.startSpan('counting work');
            span.end();
          },
        };
      },
    });
    const gw = await createTestGateway({ plugins: [counting()] });
    try {
      await gw.request('/a');
      await gw.request('/b', { method: 'POST', body: 'x' });
      const text = await client.register.getSingleMetricAsString('counting_requests_total');
      expect(text).to.include('counting_requests_total{method="GET"} 1');
      expect(text).to.include('counting_requests_total{method="POST"} 1');
      expect(sameCounter).to.deep.equal([true]);
    } finally {
      await gw.close();
    }
  });
  it('lets plugins share per-request facts through ctx.state, fresh for every request', async () => {
    const setsTenant = definePlugin({
      name: 'sets-tenant',
      version: '1.0.0',
      setup: () => ({
        onRequest(ctx) {
          const tenant = ctx.request.headers['x-tenant'];
          if (typeof tenant === 'string') ctx.state.tenant = tenant;
        },
      }),
    });
    const forwardsTenant = definePlugin({
      name: 'forwards-tenant',
      version: '1.0.0',
      setup: () => ({
        onRequest(ctx) {
          ctx.upstreamRequest.headers.set('x-tenant-seen', ctx.state.tenant ?? 'none');
        },
      }),
    });
    const gw = await createTestGateway({ plugins: [setsTenant(), forwardsTenant()] });
    try {
      await gw.request('/a', { headers: { 'x-tenant': 'acme' } });
      await gw.request('/b');
      expect(gw.upstreamRequests.map((request) => request.headers['x-tenant-seen'])).to.deep.equal(['acme', 'none']);
    } finally {
      await gw.close();
    }
  });

  it('gives each plugin request slots of its own: what onRequest set, onResponse reads for that request only', async () => {
    // Two plugins with two slots each, answered out of order: a slot must hold each request's own value.
    const timing = (name: string) =>
      definePlugin({
        name,
        version: '1.0.0',
        setup(_opts, gw) {
          const path = gw.requestSlot<string>();
          const mark = gw.requestSlot<string>();
          return {
            onRequest(ctx) {
              path.set(ctx, ctx.request.path);
              if (ctx.request.path !== '/b') mark.set(ctx, `${name} saw ${ctx.request.path}`);
            },
            onResponse(ctx, response) {
              response.headers.set(`x-${name}`, `${path.get(ctx)}|${mark.get(ctx) ?? 'unset'}`);
              mark.delete(ctx);
              if (mark.get(ctx) !== undefined) throw new Error('delete left the value');
            },
          };
        },
      })();
    const gw = await createTestGateway({ plugins: [timing('one'), timing('two')] });
    try {
      const [a, b] = await Promise.all([gw.request('/a'), gw.request('/b')]);
      expect([a.headers['x-one'], a.headers['x-two']]).to.deep.equal(['/a|one saw /a', '/a|two saw /a']);
      expect([b.headers['x-one'], b.headers['x-two']]).to.deep.equal(['/b|unset', '/b|unset']);
    } finally {
      await gw.close();
    }
  });
});
