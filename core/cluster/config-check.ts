import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { siblingModule } from '../sibling-module.ts';

const CLI = fileURLToPath(siblingModule(import.meta.url, '../cli/tollgate'));

/**
 * Runs `tollgate check` on the config in a new process: this process has the old config's modules
 * (and its plugins') cached, and would validate stale code.
 */
export function checkConfig(filepath: string): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, CLI, 'check', '--config', filepath], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk));
    child.on('error', (error) => resolve({ ok: false, output: error.message }));
    child.on('exit', (code) => resolve({ ok: code === 0, output: output.trim() }));
  });
}
