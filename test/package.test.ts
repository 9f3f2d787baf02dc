import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO, startGatewayFrom, type GatewayProcess } from './support/gateway-process.ts';
import { installPackedProject, type PackedProject } from './support/packed-project.ts';
import { send } from './support/http.ts';
import { startUpstream, type TestUpstream } from './support/upstream.ts';

const run = promisify(execFile);

/** The package as a user installs it: `npm run pack` builds and packs it, and a project installs the tarball. */
describe('the published package', function () {
  this.timeout(120_000);
  let packedProject: PackedProject;
  let project: string;
  let installed: string;
  let upstream: TestUpstream;
  let gateway: GatewayProcess | undefined;

  before(async () => {
    packedProject = await installPackedProject('package-test');
    ({ dir: project, installed } = packedProject);
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { target: 'es2024', module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, allowImportingTsExtensions: true, types: ['node'], typeRoots: [join(REPO, 'node_modules/@types')], skipLibCheck: false },
        include: ['*.ts'],
      }),
    );
    // A custom plugin that offloads work to a thread, as a user writes it: TypeScript, no build step.
    writeFileSync(join(project, 'shout-task.ts'), `export default function shout(text: string): string { return text.toUpperCase(); }\n`);
    writeFileSync(
      join(project, 'shout.ts'),
      `import { z } from 'zod';
import { definePlugin } from 'tollgate';
import type shoutTask from './shout-task.ts';

declare module 'tollgate' {
  interface RequestState {
    shouted?: boolean;
  }
}

export const shout = definePlugin({
  name: 'shout',
  version: '1.0.0',
  options: z.object({ header: z.string() }),
  async setup(options, gw) {
    const task = await gw.offload.task<typeof shoutTask>(new URL('./shout-task.ts', import.meta.url));
    return {
      async onRequest(ctx) {
        const value = ctx.request.headers[options.header];
        if (typeof value !== 'string') return;
        ctx.upstreamRequest.headers.set(options.header, await task.run(value, { mode: 'thread' }));
        ctx.state.shouted = true;
      },
    };
  },
});
`,
    );
    upstream = await startUpstream();
    writeFileSync(
      join(project, 'gateway.config.ts'),
      `import { defineConfig } from 'tollgate';
import { validate } from 'tollgate/plugins';
import { shout } from './shout.ts';

export default defineConfig({
  listen: { port: 0, host: '127.0.0.1' },
  offload: { inlineBelow: 0 },
  upstreams: { app: { targets: ['${upstream.url}'] } },
  routes: [{
    path: '/orders',
    upstream: 'app',
    plugins: [shout({ header: 'x-note' }), validate({ schemas: { body: { type: 'object', required: ['item'] } } })],
  }],
});
`,
    );
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
    packedProject?.remove();
  });

  it('ships JavaScript and type declarations, not TypeScript sources', () => {
    const files = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? files(join(dir, entry.name)) : [join(dir, entry.name)]));
    const shipped = files(installed).map((file) => file.slice(installed.length + 1));
    expect(shipped).to.include.members(['core/index.js', 'core/index.d.ts', 'plugins/index.js', 'plugins/index.d.ts', 'core/testing/index.d.ts', 'core/cli/tollgate.js', 'package.json']);
    expect(shipped.filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))).to.deep.equal([]);
  });

  it("type-checks a user's config and plugin against the shipped declarations", async () => {
    await run(join(REPO, 'node_modules/.bin/tsc'), ['-p', project]);
  });

  it('fails the type check of a plugin that gets its options wrong', async () => {
    writeFileSync(
      join(project, 'wrong.ts'),
      `import { z } from 'zod';
import { definePlugin } from 'tollgate';
export const wrong = definePlugin({ name: 'wrong', version: '1.0.0', options: z.object({ n: z.number() }),
  setup(options) { const text: string = options.n; return { onRequest(ctx) { void text; ctx.state.shouted = 'yes'; } }; } });
`,
    );
    try {
      const failure = await run(join(REPO, 'node_modules/.bin/tsc'), ['-p', project]).then(
        () => null,
        (error: { stdout: string }) => error.stdout,
      );
      expect(failure, 'tsc accepted a number assigned to a string').to.be.a('string').that.contains('wrong.ts(4,');
      // The RequestState field declared in shout.ts by declaration merging is checked here too.
      expect(failure, failure ?? '').to.match(/Type '"yes"' is not assignable to type 'boolean/);
    } finally {
      rmSync(join(project, 'wrong.ts'));
    }
  });

  it('checks and runs the config with the installed CLI: workers, bundled plugins and offload threads from node_modules', async () => {
    const cli = join(installed, 'core/cli/tollgate.js');
    const check = await run(process.execPath, [cli, 'check', '--config', join(project, 'gateway.config.ts')], { cwd: project });
    expect(check.stdout + check.stderr).to.match(/ok|valid/i);
    gateway = await startGatewayFrom(join(project, 'gateway.config.ts'), { cli, cwd: project });
    const accepted = await send(`${gateway.url}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-note': 'quiet please' },
      body: JSON.stringify({ item: 'tea' }),
    });
    expect(accepted.status).to.equal(200);
    expect(upstream.requests.at(-1)!.headers['x-note']).to.equal('QUIET PLEASE');
    const refused = await send(`${gateway.url}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(refused.status).to.equal(400);
    expect(refused.json().error.code).to.equal('TG_ERR_VALIDATION');
  });
});
