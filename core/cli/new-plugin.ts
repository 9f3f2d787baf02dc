import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const NAME = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;

/** `tollgate new plugin <name> [--dir D]`: a plugin folder with its options, hooks, a test and a docs stub. */
export function newPlugin(name: string | undefined, dir = 'plugins'): number {
  if (name === undefined || !NAME.test(name)) {
    process.stderr.write(`tollgate: new plugin needs a kebab-case name, e.g. "tollgate new plugin stamp-tenant"${name ? `, got "${name}"` : ''}\n`);
    return 2;
  }
  const folder = resolve(dir, name);
  if (existsSync(folder)) {
    process.stderr.write(`tollgate: ${folder} already exists; nothing written\n`);
    return 1;
  }
  const exportName = name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  mkdirSync(folder, { recursive: true });
  const files: Record<string, string> = {
    'index.ts': `import { z } from 'zod';
import { definePlugin, reply } from 'tollgate';

const options = z
  .strictObject({
    /** The header this plugin reads. */
    header: z.string().toLowerCase().default('x-${name}'),
    /** Answer 400 when the header is missing. Default false: let the request through. */
    required: z.boolean().default(false),
  })
  // Every option has a default, so the plugin may be listed as ${exportName}() without any.
  .prefault({});

/**
 * ${name}: say in one sentence what this plugin does for a gateway's users.
 */
export const ${exportName} = definePlugin({
  name: '${name}',
  version: '0.1.0',
  options,
  setup(opts, gw) {
    // Runs once per worker: build long-lived state here (clients, caches, compiled patterns).
    gw.logger.debug({ header: opts.header }, '${name} ready');
    return {
      onRequest(ctx) {
        const value = ctx.request.headers[opts.header];
        if (typeof value !== 'string') {
          return opts.required ? reply.json(400, { error: \`\${opts.header} is required\` }) : undefined;
        }
        // What the upstream sees: headers, path, body (see docs/plugins.md).
        ctx.upstreamRequest.headers.set('x-${name}-seen', value);
      },
      onResponse(_ctx, response) {
        response.headers.set('x-${name}', 'applied');
      },
    };
  },
});
`,
    [`${name}.test.ts`]: `import { expect } from 'chai';
import { createTestGateway } from 'tollgate/testing';
import { ${exportName} } from './index.ts';

describe('${name}', () => {
  it('passes the header on to the upstream and marks the response', async () => {
    const gw = await createTestGateway({ plugins: [${exportName}()] });
    try {
      const res = await gw.request('/anything', { headers: { 'x-${name}': 'hello' } });
      expect(res.status).to.equal(200);
      expect(res.headers['x-${name}']).to.equal('applied');
      expect(gw.upstreamRequests[0]!.headers['x-${name}-seen']).to.equal('hello');
    } finally {
      await gw.close();
    }
  });

  it('answers 400 without reaching the upstream when the header is required and missing', async () => {
    const gw = await createTestGateway({ plugins: [${exportName}({ required: true })] });
    try {
      const res = await gw.request('/anything');
      expect(res.status).to.equal(400);
      expect(gw.upstreamRequests).to.have.length(0);
    } finally {
      await gw.close();
    }
  });
});
`,
    'README.md': `# ${name}

What it does, for whom, and when not to use it.

\`\`\`ts
import { ${exportName} } from './plugins/${name}/index.ts';

routes: [{ path: '/orders/*', upstream: 'orders', plugins: [${exportName}({ header: 'x-${name}', required: true })] }],
\`\`\`

| option | default | meaning |
|---|---|---|
| \`header\` | \`'x-${name}'\` | the header this plugin reads |
| \`required\` | \`false\` | answer 400 when it is missing |

Test it: \`npx mocha ${join(dir, name, `${name}.test.ts`)}\`
`,
  };
  for (const [file, text] of Object.entries(files)) writeFileSync(join(folder, file), text);
  process.stdout.write(`created ${folder}/\n${Object.keys(files).map((file) => `  ${file}`).join('\n')}\nnext: npx mocha ${join(dir, name, `${name}.test.ts`)}\n`);
  return 0;
}
