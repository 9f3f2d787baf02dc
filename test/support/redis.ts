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

/**
 * A standalone redis-server on a free loopback port, with no persistence. With `tls`, that port
 * speaks only TLS, with the given certificate.
 */
export async function startRedis(extraArgs: string[] = [], options: { tls?: TlsFiles } = {}): Promise<TestRedis> {
  requireRedisBinaries();
  const port = await freePortWithBus();
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-redis-'));
  const { tls } = options;
  if (tls) extraArgs = [...tlsOnly(port, tls), ...extraArgs];
  let child = await spawnServer(port, dir, extraArgs);
  const cliArgs = cliTls(tls);
  const redis: TestRedis = {
    port,
    get pid() {
      return child.pid!;
    },
    url: `${tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    cli: (...args) => plainCli(port, [...cliArgs, ...args]),
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

/**
 * A real Redis Sentinel (`redis-server --sentinel`) watching `master` as `name`. With `tls`, it
 * speaks only TLS and reaches the master over TLS (the master must be TLS-only too).
 */
export async function startRedisSentinel(master: TestRedis, name: string, options: { tls?: TlsFiles } = {}): Promise<TestSentinel> {
  requireRedisBinaries();
  const port = await freePortWithBus();
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-sentinel-'));
  const conf = join(dir, 'sentinel.conf');
  const { tls } = options;
  writeFileSync(conf, [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor ${name} 127.0.0.1 ${master.port} 1`, `sentinel down-after-milliseconds ${name} 5000`, ''].join('\n'));
  // Command-line options win over the file's: with TLS, port 0 and a TLS port instead.
  const child = spawn('redis-server', [conf, '--sentinel', ...(tls ? [...tlsOnly(port, tls), '--tls-replication', 'yes'] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk));
  const deadline = Date.now() + 10_000;
  // Ready once it answers for the master it monitors.
  while (!(await plainCli(port, [...cliTls(tls), 'sentinel', 'get-master-addr-by-name', name]).catch(() => '')).includes(String(master.port))) {
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
  /** Seed nodes as `host:port` (every node, masters and replicas). */
  nodes: string[];
  ports: number[];
  cli(port: number, ...args: string[]): Promise<string>;
  /** The port of the master that serves `key`'s slot now. */
  masterFor(key: string): Promise<number>;
  /** Kills one node (SIGKILL: no goodbye to clients or to the other nodes). */
  kill(port: number): Promise<void>;
  /** Starts a killed node again on its port, with its cluster config file (so it rejoins), no data. */
  restart(port: number): Promise<void>;
  /** Resolves once every live node reports `cluster_state:ok` and, given `without`, that node failed and serves no slot. */
  waitHealthy(options?: { without?: number; timeoutMs?: number }): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A real Redis Cluster of `masters` nodes, each with `replicas` replicas, on loopback, created with
 * `redis-cli --cluster create` and waited on until every node reports `cluster_state:ok`. A node
 * failure is noticed after 2 s (`cluster-node-timeout`), when a replica takes over its slots.
 */
export async function startRedisCluster(masters = 3, replicas = 0, options: { tls?: TlsFiles } = {}): Promise<TestRedisCluster> {
  requireRedisBinaries();
  const { tls } = options;
  // With TLS, every node speaks only TLS, to clients and to each other (bus and replication).
  const tlsArgs = cliTls(tls);
  const cli = (port: number, args: string[]): Promise<string> => plainCli(port, [...tlsArgs, ...args]);
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-redis-cluster-'));
  const ports: number[] = [];
  const children = new Map<number, ChildProcess>();
  const nodeArgs = (port: number) => [
    '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000',
    ...(tls ? [...tlsOnly(port, tls), '--tls-cluster', 'yes', '--tls-replication', 'yes'] : []),
  ];
  const stopAll = async () => {
    await Promise.all([...children.values()].map((child) => killChild(child, 'SIGKILL')));
    rmSync(dir, { recursive: true, force: true });
  };
  const waitHealthy = async ({ without, timeoutMs = 20_000 }: { without?: number; timeoutMs?: number } = {}) => {
    const deadline = Date.now() + timeoutMs;
    for (const port of ports) {
      if (port === without) continue;
      for (;;) {
        const info = await cli(port, ['cluster', 'info']).catch(() => '');
        const nodes = without === undefined ? '' : await cli(port, ['cluster', 'nodes']).catch(() => '');
        // Until the others agree it failed (`fail`, not `fail?`) and its slots moved, it still counts.
        const stillServing = nodes.split('\n').some((line) => {
          const fields = line.split(' ');
          return fields[1]?.includes(`:${without}@`) && (!fields[2]!.split(',').includes('fail') || fields.length > 8);
        });
        const replication = await cli(port, ['info', 'replication']).catch(() => '');
        // A replica that has not synced with its master could not take over from it.
        const synced = !replication.includes('role:slave') || replication.includes('master_link_status:up');
        if (info.includes('cluster_state:ok') && !stillServing && synced) break;
        if (Date.now() > deadline) throw new Error(`redis cluster node ${port} never reached cluster_state:ok${without ? ` without ${without}` : ''}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  };
  try {
    for (let i = 0; i < masters * (1 + replicas); i++) {
      const port = await freePortWithBus(ports);
      ports.push(port);
      children.set(port, await spawnServer(port, dir, nodeArgs(port)));
    }
    const nodes = ports.map((port) => `127.0.0.1:${port}`);
    await run('redis-cli', [...tlsArgs, '--cluster', 'create', ...nodes, '--cluster-replicas', String(replicas), '--cluster-yes'], { timeout: 30_000 });
    // Replicas are assigned by the create and attach over the next moments: wait for all of them.
    const deadline = Date.now() + 20_000;
    while ((await Promise.all(ports.map((port) => cli(port, ['role'])))).filter((role) => role.startsWith('slave')).length < masters * replicas) {
      if (Date.now() > deadline) throw new Error('redis cluster replicas never attached');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await waitHealthy();
    return {
      nodes,
      ports,
      cli: (port, ...args) => cli(port, args),
      async masterFor(key) {
        const alive = ports.find((port) => children.get(port)!.exitCode === null && children.get(port)!.signalCode === null)!;
        const slot = Number(await cli(alive, ['cluster', 'keyslot', key]));
        for (const line of (await cli(alive, ['cluster', 'nodes'])).split('\n')) {
          const fields = line.split(' ');
          const flags = fields[2]?.split(',') ?? [];
          if (!flags.includes('master') || flags.includes('fail')) continue;
          const port = Number(/:(\d+)@/.exec(fields[1]!)![1]);
          for (const range of fields.slice(8)) {
            const [from, to = from] = range.split('-').map(Number) as [number, number?];
            if (slot >= from && slot <= to!) return port;
          }
        }
        throw new Error(`no master serves slot ${slot}`);
      },
      async kill(port) {
        await killChild(children.get(port)!, 'SIGKILL');
      },
      async restart(port) {
        children.set(port, await spawnServer(port, dir, nodeArgs(port)));
      },
      waitHealthy,
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** A certificate and its key; the certificate is its own CA. */
export interface TlsFiles {
  cert: string;
  key: string;
}

/** redis-server options to speak only TLS on `port`; clients need no certificate of their own. */
function tlsOnly(port: number, tls: TlsFiles): string[] {
  return ['--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.cert, '--tls-key-file', tls.key, '--tls-ca-cert-file', tls.cert, '--tls-auth-clients', 'no'];
}

/** redis-cli options to talk to such a server. */
function cliTls(tls: TlsFiles | undefined): string[] {
  return tls ? ['--tls', '--cacert', tls.cert] : [];
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

async function plainCli(port: number, args: string[]): Promise<string> {
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
