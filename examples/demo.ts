import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startDemoUpstream } from './demo-upstream.ts';

// `npm run demo`: a demo upstream (DEMO_UPSTREAM_PORT, default 3001) and tollgate on the default
// gateway.config.ts (PORT, default 8080).
const upstreamPort = Number(process.env.DEMO_UPSTREAM_PORT ?? 3001);
const gatewayPort = Number(process.env.PORT ?? 8080);
const upstream = await startDemoUpstream(upstreamPort).catch((error: NodeJS.ErrnoException) => {
  process.stderr.write(
    `demo: cannot start the demo upstream on 127.0.0.1:${upstreamPort} (${error.code ?? error.message}); ` +
      'set DEMO_UPSTREAM_PORT to a free port\n',
  );
  process.exit(1);
});
const cli = fileURLToPath(new URL('../core/cli/tollgate.ts', import.meta.url));
const gateway = spawn(process.execPath, [cli, 'start', ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, PORT: String(gatewayPort), DEMO_UPSTREAM: `http://127.0.0.1:${upstreamPort}` },
  // Its own process group: a terminal's Ctrl-C reaches only this script, which passes it on once.
  detached: true,
});
process.stderr.write(
  `demo upstream on http://127.0.0.1:${upstreamPort}; once tollgate is ready, try:\n` +
    `  curl -i http://127.0.0.1:${gatewayPort}/api/hello\n` +
    `  curl -i http://127.0.0.1:${gatewayPort}/orders/42\n` +
    'Ctrl-C drains and stops both.\n',
);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => gateway.kill(signal));
}
gateway.on('exit', (code) => {
  upstream.close();
  process.exit(code ?? 1);
});
