import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../config/load-config.ts';
import type { ResolvedConfig } from '../config/validate.ts';
import { createLogger, type LoggerHandle } from '../log/logger.ts';
import { ENV_CONFIG, ENV_PORT, ENV_WORKER, isWorkerMessage, type PrimaryMessage } from './messages.ts';
import { respawnDelay } from './respawn-backoff.ts';

export interface PrimaryOptions {
  configPath?: string | undefined;
  /** Overrides the config's `workers`. */
  workers?: number | undefined;
}

interface Slot {
  readonly id: number;
  worker: Worker | null;
  startedAt: number;
  ready: boolean;
  /** Consecutive short-lived runs, for the backoff. */
  failures: number;
  lastFatal: string | null;
  respawnTimer: NodeJS.Timeout | null;
}

// A worker that lived this long before dying is treated as healthy: it is replaced at once.
const HEALTHY_RUN_MS = 10_000;
// Past the drain timeout, workers that are still alive are killed.
const SHUTDOWN_GRACE_MS = 5_000;

const WORKER_ENTRY = fileURLToPath(new URL('./worker-main.ts', import.meta.url));

/**
 * The primary process: validates the config once, forks the workers that share its listening socket,
 * replaces the ones that die, and drains them all on SIGTERM/SIGINT. Resolves with the exit code.
 */
export async function runPrimary(options: PrimaryOptions): Promise<number> {
  const log = createLogger('info', { role: 'primary', pid: process.pid });
  const { logger } = log;

  let filepath: string;
  let config: ResolvedConfig;
  try {
    ({ filepath, config } = await loadConfig({ path: options.configPath }));
  } catch (error) {
    const code = (error as { code?: string }).code;
    process.stderr.write(`tollgate: ${code ? `[${code}] ` : ''}${(error as Error).message}\n`);
    return 1;
  }
  logger.level = config.log.level;

  // Port 0 is resolved once here: a worker respawned after the last one died would otherwise listen
  // on a different random port.
  const port = config.listen.port === 0 ? await freePort(config.listen.host) : config.listen.port;
  const count = options.workers ?? (config.workers === 'auto' ? availableParallelism() : config.workers);
  cluster.schedulingPolicy = config.scheduling === 'os' ? cluster.SCHED_NONE : cluster.SCHED_RR;
  cluster.setupPrimary({ exec: WORKER_ENTRY, args: [] });

  const slots: Slot[] = Array.from({ length: count }, (_, index) => ({
    id: index + 1,
    worker: null,
    startedAt: 0,
    ready: false,
    failures: 0,
    lastFatal: null,
    respawnTimer: null,
  }));
  let started = false;
  let stopping = false;
  let exitCode = 0;

  return new Promise<number>((resolve) => {
    const finish = (code: number): void => {
      void log.close().then(() => resolve(code));
    };

    const fork = (slot: Slot): void => {
      slot.respawnTimer = null;
      slot.ready = false;
      slot.lastFatal = null;
      slot.startedAt = Date.now();
      const worker = cluster.fork({ [ENV_CONFIG]: filepath, [ENV_WORKER]: String(slot.id), [ENV_PORT]: String(port) });
      slot.worker = worker;
      worker.on('message', (message: unknown) => {
        if (!isWorkerMessage(message)) return;
        if (message.type === 'tollgate:fatal') slot.lastFatal = `${message.code}: ${message.message}`;
        if (message.type === 'tollgate:ready') onReady(slot, message.port);
      });
      worker.on('exit', (code, signal) => onExit(slot, worker, code, signal));
    };

    const onReady = (slot: Slot, port: number): void => {
      slot.ready = true;
      logger.info({ worker: slot.id, workerPid: slot.worker?.process.pid }, 'worker ready');
      if (!started && slots.every((s) => s.ready)) {
        started = true;
        logger.info(
          { port, host: config.listen.host, workers: slots.map((s) => s.worker?.process.pid), config: filepath },
          `tollgate ready on ${config.listen.host}:${port} with ${count} worker${count === 1 ? '' : 's'}`,
        );
      }
    };

    const onExit = (slot: Slot, worker: Worker, code: number | null, signal: string | null): void => {
      if (slot.worker !== worker) return;
      slot.worker = null;
      const ranMs = Date.now() - slot.startedAt;
      const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
      if (stopping) {
        if (slots.every((s) => s.worker === null)) {
          logger.info('all workers stopped; exiting');
          finish(exitCode);
        }
        return;
      }
      if (!started && slot.lastFatal) {
        // A worker that cannot start will not start on retry either: fail fast with its reason.
        logger.fatal({ worker: slot.id, reason: slot.lastFatal }, `worker ${slot.id} failed to start: ${slot.lastFatal}`);
        process.stderr.write(`tollgate: worker failed to start: ${slot.lastFatal}\n`);
        stopAll('startup failed', 1);
        return;
      }
      slot.failures = ranMs >= HEALTHY_RUN_MS && slot.ready ? 0 : slot.failures + 1;
      const delay = respawnDelay(slot.failures);
      logger.warn(
        { worker: slot.id, workerPid: worker.process.pid, code, signal, ranMs, reason: slot.lastFatal, respawnInMs: delay },
        `worker ${slot.id} (pid ${worker.process.pid}) ${how}${slot.lastFatal ? ` (${slot.lastFatal})` : ''} after ${ranMs} ms; respawning in ${delay} ms`,
      );
      slot.respawnTimer = setTimeout(() => fork(slot), delay);
    };

    const stopAll = (reason: string, code: number): void => {
      if (stopping) return;
      stopping = true;
      exitCode = code;
      const live = slots.filter((slot) => slot.worker !== null);
      logger.info({ reason, workers: live.length }, `shutting down (${reason}): draining ${live.length} worker(s)`);
      for (const slot of slots) if (slot.respawnTimer) clearTimeout(slot.respawnTimer);
      if (live.length === 0) {
        finish(exitCode);
        return;
      }
      const drain: PrimaryMessage = { type: 'tollgate:drain' };
      for (const slot of live) slot.worker!.send(drain);
      setTimeout(() => {
        for (const slot of slots) {
          if (slot.worker) {
            logger.error({ worker: slot.id }, `worker ${slot.id} did not drain in time; killing it`);
            slot.worker.process.kill('SIGKILL');
          }
        }
      }, config.shutdown.drainTimeout + SHUTDOWN_GRACE_MS).unref();
    };

    let signals = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (++signals > 1) {
        logger.warn(`second ${signal}: exiting without waiting for the drain`);
        for (const slot of slots) slot.worker?.process.kill('SIGKILL');
        finish(130);
        return;
      }
      stopAll(signal, 0);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    // SIGHUP would end the process by default; operators send it expecting a reload, which is not
    // built yet: say so instead of dying.
    process.on('SIGHUP', () => logger.warn('SIGHUP received: config reload is not supported yet; still serving the loaded config'));

    for (const slot of slots) fork(slot);
  });
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
