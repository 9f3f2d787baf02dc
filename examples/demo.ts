import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startDemoUpstream } from './demo-upstream.ts';

// `npm run demo`: a demo upstream on 127.0.0.1:3001 and tollgate on the default gateway.config.ts.
const upstream = await startDemoUpstream(3001);
const cli = fileURLToPath(new URL('../core/cli/tollgate.ts', import.meta.url));
const gateway = spawn(process.execPath, [cli, 'start', ...process.argv.slice(2)], {
  stdio: 'inherit',
  // Its own process group: a terminal's Ctrl-C reaches only this script, which passes it on once.
  detached: true,
});
process.stderr.write(
  'demo upstream on http://127.0.0.1:3001; once tollgate is ready, try:\n' +
    '  curl -i http://127.0.0.1:8080/api/hello\n' +
    '  curl -i http://127.0.0.1:8080/orders/42\n' +
    'Ctrl-C drains and stops both.\n',
);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => gateway.kill(signal));
}
gateway.on('exit', (code) => {
  upstream.close();
  process.exit(code ?? 1);
});
