import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError, definePlugin, GatewayError, loadConfig } from '../core/index.ts';
import { validateConfig } from '../core/config/validate.ts';
import { CORE, FIXTURE_PLUGINS, runCli, writeConfig } from './support/gateway-process.ts';

const limiter = definePlugin({
  name: 'limiter',
  version: '1.0.0',
  options: z.strictObject({ limit: z.int().positive(), window: z.string() }),
  setup: () => ({}),
});

const base = {
  upstreams: { orders: { targets: ['http://127.0.0.1:3001'] } },
  routes: [{ path: '/orders/*', methods: ['GET'], upstream: 'orders' }],
};

async function issuesOf(config: unknown): Promise<string[]> {
  try {
    await validateConfig(config, 'test.config.ts');
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    return (error as ConfigError).issues.map((issue) => `${issue.where}: ${issue.message}`);
  }
  throw new Error('expected the config to be rejected');
}

describe('config', () => {
  describe('validation', () => {
    it('fills in defaults and turns durations into milliseconds', async () => {
      const config = await validateConfig({ ...base, upstreams: { orders: { targets: ['http://127.0.0.1:3001/v1/'], timeouts: { headers: '1.5s' } } } }, 'x');
      expect(config.listen).to.deep.equal({ port: 8080, host: '0.0.0.0' });
      expect(config.workers).to.equal('auto');
      expect(config.upstreams.orders!.timeouts).to.deep.equal({ connect: 5000, headers: 1500, body: 30000 });
      expect(config.upstreams.orders!.targets[0]).to.deep.equal({ origin: 'http://127.0.0.1:3001', host: '127.0.0.1:3001', basePath: '/v1', weight: 1 });
      expect(config.routes[0]!.name).to.equal('GET /orders/*');
    });

    it('names the option and what was expected for a wrong type or an unknown key', async () => {
      const issues = await issuesOf({ ...base, listen: { prot: 8080 }, workers: 'many' });
      expect(issues).to.include('listen: Unrecognized key: "prot"');
      expect(issues).to.include('workers: expected "auto" or a whole number of workers (1-1024)');
    });

    it('names the route when a route refers to an upstream that does not exist', async () => {
      const issues = await issuesOf({ ...base, routes: [{ path: '/x', upstream: 'ordres' }] });
      expect(issues).to.deep.equal(['routes[0] (* /x) › upstream: no upstream named "ordres"; defined: "orders"']);
    });

    it('names the route, the plugin and the option path when plugin options are invalid', async () => {
      const issues = await issuesOf({
        ...base,
        routes: [{ name: 'orders', path: '/orders/*', upstream: 'orders', plugins: [limiter({ limit: -1, window: '1m' })] }],
      });
      expect(issues).to.have.length(1);
      expect(issues[0]).to.match(/^routes\[0\] \(orders\) › plugins\[0\] "limiter" › options\.limit: Too small: expected number to be >0/);
    });

    it('names global plugins by their place in the list', async () => {
      const issues = await issuesOf({ ...base, plugins: [limiter({ limit: 1 } as never)] });
      expect(issues[0]).to.match(/^plugins\[0\] "limiter" › options\.window: /);
    });

    it('refuses a plugin factory listed without being called', async () => {
      const issues = await issuesOf({ ...base, plugins: [limiter] });
      expect(issues[0]).to.equal('plugins[0]: expected a plugin: call its factory, e.g. myPlugin({ ... }), not the factory itself');
    });

    it('explains a malformed duration, target URL or trusted proxy', async () => {
      const issues = await issuesOf({
        ...base,
        trustProxy: ['10.0.0.0/33', 'proxy.local'],
        upstreams: { orders: { targets: ['127.0.0.1:3001'], timeouts: { connect: '5 sec' } } },
      });
      expect(issues).to.include.members([
        'trustProxy[0]: "10.0.0.0/33" has an invalid prefix length (0-32)',
        'trustProxy[1]: "proxy.local" is not an IP address or CIDR block',
        `upstreams.orders.timeouts.connect: expected a duration such as 500, '250ms', '30s', '5m' or '1h', got "5 sec"`,
      ]);
      expect(issues.find((i) => i.startsWith('upstreams.orders.targets[0]'))).to.match(/expected an (absolute http\(s\) URL|http: or https: URL)/);
    });

    it('refuses routes that collide, and prefixes or rewrites that do not fit the path', async () => {
      const issues = await issuesOf({
        ...base,
        routes: [
          { path: '/a/:id', upstream: 'orders' },
          { path: '/a/:other', upstream: 'orders' },
          { path: '/b/*', upstream: 'orders', stripPrefix: '/c' },
          { path: '/d/:id', upstream: 'orders', rewrite: '/e/:name' },
        ],
      });
      expect(issues).to.deep.equal([
        'routes[2] (* /b/*) › stripPrefix: "/c" is not a prefix of the fixed part of "/b/*"',
        'routes[3] (* /d/:id) › rewrite: ":name" is not captured by the route path "/d/:id"',
        'routes[1] (* /a/:other) › path: every method /a/:other is already routed',
      ]);
    });
  });

  describe('definePlugin', () => {
    it('refuses a definition without a kebab-case name, a semver version, a schema or setup', () => {
      const setup = () => ({});
      expect(() => definePlugin({ name: 'MyPlugin', version: '1.0.0', setup })).to.throw(GatewayError, /kebab-case/);
      expect(() => definePlugin({ name: 'my-plugin', version: 'one', setup })).to.throw(GatewayError, /plugin "my-plugin": version must be semver/);
      expect(() => definePlugin({ name: 'my-plugin', version: '1.0.0', options: { limit: 1 } as never, setup })).to.throw(GatewayError, /Standard Schema/);
      expect(() => definePlugin({ name: 'my-plugin', version: '1.0.0' } as never)).to.throw(GatewayError, /setup must be a function/);
    });
  });

  describe('loading', () => {
    it('finds gateway.config.ts in the working directory and loads it as TypeScript', async () => {
      const file = writeConfig(`
        import { defineConfig } from '${CORE}';
        const port: number = 9000;
        export default defineConfig({ listen: { port }, upstreams: { a: { targets: ['http://127.0.0.1:1'] } }, routes: [{ path: '/', upstream: 'a' }] });
      `);
      const loaded = await loadConfig({ cwd: join(file, '..') });
      expect(loaded.filepath).to.equal(file);
      expect(loaded.config.listen.port).to.equal(9000);
    });

    it('says where it looked when no config exists', async () => {
      const empty = mkdtempSync(join(tmpdir(), 'tollgate-empty-'));
      const error = await loadConfig({ cwd: empty }).catch((e: GatewayError) => e);
      expect(error).to.have.property('code', 'TG_ERR_CONFIG_NOT_FOUND');
      expect((error as Error).message).to.contain('gateway.config.ts');
    });

    it('says how to fix a config file without a default export', async () => {
      const file = writeConfig(`export const config = { routes: [] };`);
      const error = await loadConfig({ path: file }).catch((e: GatewayError) => e);
      expect(error).to.have.property('code', 'TG_ERR_CONFIG_LOAD');
      expect((error as Error).message).to.equal(
        `could not load config ${file}: it has no default export; write \`export default defineConfig({ ... })\``,
      );
    });

    it('reports a config file that fails to import, with the cause', async () => {
      const file = writeConfig(`export default { routes: [ }`);
      const error = await loadConfig({ path: file }).catch((e: GatewayError) => e);
      expect(error).to.have.property('code', 'TG_ERR_CONFIG_LOAD');
      expect((error as Error).message).to.contain(file);
    });
  });

  describe('tollgate check', () => {
    it('prints what is wrong and exits 1 for a broken config', async () => {
      const file = writeConfig(`
        import { defineConfig } from '${CORE}';
        import { probe } from '${FIXTURE_PLUGINS}/probe.ts';
        export default defineConfig({
          upstreams: { a: { targets: ['http://127.0.0.1:1'] } },
          routes: [{ name: 'orders', path: '/orders', upstream: 'a', plugins: [probe({ label: 7 } as never)] }],
        });
      `);
      const { code, stderr, stdout } = await runCli(['check', '--config', file]);
      expect(code).to.equal(1);
      expect(stdout).to.equal('');
      expect(stderr).to.contain(`[TG_ERR_CONFIG_INVALID] invalid gateway config ${file}`);
      expect(stderr).to.contain('routes[0] (orders) › plugins[0] "probe" › options.label: Invalid input: expected string, received number');
    });

    it('summarises a valid config and exits 0 without starting anything', async () => {
      const file = join(mkdtempSync(join(tmpdir(), 'tollgate-ok-')), 'gateway.config.ts');
      writeFileSync(
        file,
        `import { defineConfig } from '${CORE}';
         import { probe } from '${FIXTURE_PLUGINS}/probe.ts';
         export default defineConfig({ upstreams: { a: { targets: ['http://127.0.0.1:1'] } }, plugins: [probe({ label: 'x' })], routes: [{ path: '/', upstream: 'a' }] });`,
      );
      const { code, stdout } = await runCli(['check'], join(file, '..'));
      expect(code).to.equal(0);
      expect(stdout).to.equal(`config OK: ${file}\n  1 route(s), 1 upstream(s), plugins: probe\n`);
    });

    it('validates the repository default config', async () => {
      const { code, stdout } = await runCli(['check']);
      expect(code).to.equal(0);
      expect(stdout).to.contain('gateway.config.ts');
    });
  });

  describe('tollgate start', () => {
    it('refuses to start on an invalid config, naming the problem', async () => {
      const file = writeConfig(`export default { upstreams: {}, routes: [{ path: 'no-slash', upstream: 'a' }] };`);
      const { code, stderr } = await runCli(['start', '--config', file, '--workers', '1']);
      expect(code).to.equal(1);
      expect(stderr).to.contain('routes[0] (* no-slash) › path: a route path starts with "/"');
    });

    it('rejects a --workers value that is not a positive whole number', async () => {
      const { code, stderr } = await runCli(['start', '--workers', 'two']);
      expect(code).to.equal(2);
      expect(stderr).to.contain('--workers expects a whole number >= 1, got "two"');
    });
  });
});
