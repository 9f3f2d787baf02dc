import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const CORE = join(REPO, 'core/index.ts');
export const PLUGINS = join(REPO, 'plugins/index.ts');
export const FIXTURE_PLUGINS = join(REPO, 'test/fixtures/plugins');
const CLI = join(REPO, 'core/cli/tollgate.ts');

export type LogLine = Record<string, any> & { msg?: string };

export interface GatewayProcess {
  url: string;
  port: number;
  /** Pids of the workers that were ready at start. */
  workerPids: number[];
  child: ChildProcess;
  logs: LogLine[];
  stderr(): string;
  /** Resolves with the first log line (past or future) that matches. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Resolves with the exit code (or signal name) when the primary exits. */
  exited: Promise<number | string>;
  /** Sends a signal to the primary and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/** Writes a config file into a fresh temp dir and returns its path. */
export function writeConfig(source: string, name = 'gateway.config.ts'): string {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-test-'));
  const file = join(dir, name);
  writeFileSync(file, source);
  return file;
}

/** Runs the CLI to completion. */
export function runCli(args: string[], cwd = REPO): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Starts `tollgate start` (the real primary + cluster workers) on a config given as TypeScript source
 * and resolves once the primary logs that it is ready.
 */
export function startGateway(configSource: string, options: StartOptions = {}): Promise<GatewayProcess> {
  return startGatewayFrom(writeConfig(configSource), options);
}

export interface StartOptions {
  workers?: number;
  /** Extra CLI arguments for `tollgate start`. */
  args?: string[];
  env?: Record<string, string>;
  /** The CLI to run (default: this repository's); a test of the built package runs the installed one. */
  cli?: string;
  /** Working directory of the gateway (default: the repository). */
  cwd?: string;
}

/** Like startGateway, for a config file that already exists. */
export async function startGatewayFrom(configPath: string, options: StartOptions = {}): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [options.cli ?? CLI, 'start', '--config', configPath, '--workers', String(options.workers ?? 1), ...(options.args ?? [])], {
    cwd: options.cwd ?? REPO,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  const waiters = new Set<{ match: (line: LogLine) => boolean; resolve: (line: LogLine) => void }>();
  let stderr = '';
  let pending = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8');
    let newline: number;
    while ((newline = pending.indexOf('\n')) !== -1) {
      const text = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        line = { msg: text, unparsed: true };
      }
      logs.push(line);
      for (const waiter of waiters) {
        if (waiter.match(line)) {
          waiters.delete(waiter);
          waiter.resolve(line);
        }
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));

  const waitForLog = (match: (line: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> => {
    const seen = logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (line: LogLine) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`log line not seen within ${timeoutMs} ms; stderr:\n${stderr}\nlogs:\n${logs.map((l) => JSON.stringify(l)).join('\n')}`));
      }, timeoutMs);
      waiters.add(waiter);
    });
  };

  const ready = await Promise.race([
    waitForLog((line) => typeof line.msg === 'string' && line.msg.startsWith('tollgate ready')),
    exited.then((code) => {
      throw new Error(`gateway exited (${code}) before it was ready:\n${stderr}`);
    }),
  ]);
  return {
    url: `http://127.0.0.1:${ready.port}`,
    port: ready.port,
    workerPids: ready.workers,
    child,
    logs,
    stderr: () => stderr,
    waitForLog,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
