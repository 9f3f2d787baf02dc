import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Real Redis servers for the tests: `redis-server` and `redis-cli` from Debian's packages (npm test's
 * `pretest` installs them). A missing binary is a failure, never a skip.
 */
export function requireRedisBinaries(): void {
  for (const binary of ['redis-server', 'redis-cli']) {
    if (spawnSync(binary, ['--version']).error) {
      throw new Error(`${binary} is not installed; the rate-limit tests need a real Redis (run: npm run pretest, or apt-get install redis-server)`);
    }
  }
}

export interface TestRedis {
  port: number;
  /** The server's pid (it changes on restart). */
  readonly pid: number;
  url: string;
  /** Sends a command with redis-cli and returns its output. */
  cli(...args: string[]): Promise<string>;
  /** Kills the server (SIGKILL: no goodbye to clients). */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty. */
  restart(): Promise<void>;
  /** Freezes the process (SIGSTOP): connections stay open, nothing answers. */
  freeze(): void;
  thaw(): void;
  stop(): Promise<void>;
}

/** A standalone redis-server on a free loopback port, with no persistence. */
export async function startRedis(extraArgs: string[] = []): Promise<TestRedis> {
  requireRedisBinaries();
  const port = await freePortWithBus();
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-redis-'));
  let child = await spawnServer(port, dir, extraArgs);
  const redis: TestRedis = {
    port,
    get pid() {
      return child.pid!;
    },
    url: `redis://127.0.0.1:${port}`,
    cli: (...args) => cli(port, args),
    async kill() {
      await killChild(child, 'SIGKILL');
    },
    async restart() {
      child = await spawnServer(port, dir, extraArgs);
    },
    freeze: () => child.kill('SIGSTOP'),
    thaw: () => child.kill('SIGCONT'),
    async stop() {
      child.kill('SIGCONT');
      await killChild(child, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return redis;
}

export interface TestSentinel {
  /** `host:port` of the sentinel. */
  address: string;
  stop(): Promise<void>;
}

/** A real Redis Sentinel (`redis-server --sentinel`) watching `master` as `name`. */
export async function startRedisSentinel(master: TestRedis, name: string): Promise<TestSentinel> {
  requireRedisBinaries();
  const port = await freePortWithBus();
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-sentinel-'));
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(conf, [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor ${name} 127.0.0.1 ${master.port} 1`, `sentinel down-after-milliseconds ${name} 5000`, ''].join('\n'));
  const child = spawn('redis-server', [conf, '--sentinel'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk));
  const deadline = Date.now() + 10_000;
  // Ready once it answers for the master it monitors.
  while (!(await cli(port, ['sentinel', 'get-master-addr-by-name', name]).catch(() => '')).includes(String(master.port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis sentinel on port ${port} did not start: ${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    address: `127.0.0.1:${port}`,
    async stop() {
      await killChild(child, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface TestRedisCluster {
  /** Seed nodes as `host:port`. */
  nodes: string[];
  ports: number[];
  cli(port: number, ...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

/**
 * A real Redis Cluster of `masters` nodes (no replicas) on loopback, created with
 * `redis-cli --cluster create` and waited on until every node reports `cluster_state:ok`.
 */
export async function startRedisCluster(masters = 3): Promise<TestRedisCluster> {
  requireRedisBinaries();
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-redis-cluster-'));
  const ports: number[] = [];
  const children: ChildProcess[] = [];
  try {
    for (let i = 0; i < masters; i++) {
      const port = await freePortWithBus(ports);
      ports.push(port);
      children.push(
        await spawnServer(port, dir, ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000']),
      );
    }
    const nodes = ports.map((port) => `127.0.0.1:${port}`);
    await run('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes'], { timeout: 20_000 });
    const deadline = Date.now() + 20_000;
    for (const port of ports) {
      while (!(await cli(port, ['cluster', 'info'])).includes('cluster_state:ok')) {
        if (Date.now() > deadline) throw new Error(`redis cluster node ${port} never reached cluster_state:ok`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    return {
      nodes,
      ports,
      cli: (port, ...args) => cli(port, args),
      async stop() {
        await Promise.all(children.map((child) => killChild(child, 'SIGKILL')));
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await Promise.all(children.map((child) => killChild(child, 'SIGKILL')));
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

async function spawnServer(port: number, dir: string, extraArgs: string[]): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs];
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server on port ${port} exited: ${output}`);
    if (output.includes('Ready to accept connections')) return child;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server on port ${port} did not start: ${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function killChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  await exited;
}

async function cli(port: number, args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-p', String(port), ...args], { timeout: 10_000 });
  return stdout;
}

/** A port free on loopback whose cluster bus port (port + 10000) is free too. */
async function freePortWithBus(taken: number[] = []): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    if (taken.includes(port)) continue;
    if ((await isFree(port)) && (await isFree(port + 10_000))) return port;
  }
  throw new Error('no free port pair for redis');
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}
