import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../config/load-config.ts';
import type { ResolvedConfig } from '../config/validate.ts';
import { createLogger } from '../log/logger.ts';
import { serveHostLimits } from '../limits/host-limits.ts';
import { MemoryLimitStore } from '../limits/memory-store.ts';
import { HostMetrics, startMetricsExport } from '../telemetry/metrics.ts';
import type { MetricsExport } from '../telemetry/metrics-export.ts';
import type { ParsedTelemetry } from '../config/schema.ts';
import type { Logger } from 'pino';
import { HealthChecks } from './health-checks.ts';
import { ENV_CONFIG, ENV_PORT, ENV_WORKER, ENV_WORKERS, isWorkerMessage, type PrimaryMessage, type RedisState } from './messages.ts';
import { respawnDelay } from './respawn-backoff.ts';
import { startAdmin, type ReloadOutcome } from './admin.ts';
import { checkConfig } from './config-check.ts';
import { watchConfig } from './config-watch.ts';
import { freePort } from './free-port.ts';
import type { Server } from 'node:http';
import { siblingModule } from '../sibling-module.ts';
import { purgeProblem, type PurgeOutcome, type PurgeTarget } from '../cache/purge.ts';
import { workerExecArgv } from './worker-v8-flags.ts';
import { workerMallocEnv } from './worker-malloc.ts';
import { ENV_STRIPPED_SOURCES, prepareConfigFolder, prepareWorkerSources } from './worker-sources.ts';

export interface PrimaryOptions {
  configPath?: string | undefined;
  /** Overrides the config's `workers`. */
  workers?: number | undefined;
  /** Reload when the config file changes. */
  watch?: boolean | undefined;
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
  /** The worker's Redis connection as it last reported it (up, or down and why); null before it says (or without Redis). */
  redis: RedisState | null;
}

// A worker that lived this long before dying is treated as healthy: it is replaced at once.
const HEALTHY_RUN_MS = 10_000;
// Past the drain timeout, workers that are still alive are killed.
const SHUTDOWN_GRACE_MS = 5_000;

let purgeIds = 0;

/** Sends a cache purge to `workers` and adds up their answers (a worker that does not answer in 2 s counts 0). */
function broadcastPurge(workers: Worker[], purge: PurgeTarget): Promise<PurgeOutcome> {
  const id = ++purgeIds;
  return new Promise((resolve) => {
    let purged = 0;
    let waiting = 0;
    const listeners = new Map<Worker, (message: { type?: string; id?: number; count?: number }) => void>();
    const finish = (): void => {
      clearTimeout(timer);
      for (const [worker, listener] of listeners) worker.off('message', listener);
      resolve({ purged, workers: listeners.size });
    };
    const timer = setTimeout(finish, 2_000);
    for (const worker of workers) {
      if (!worker.isConnected()) continue;
      const listener = (message: { type?: string; id?: number; count?: number }): void => {
        if (message?.type !== 'tollgate:cache-purged' || message.id !== id) return;
        purged += message.count ?? 0;
        if (--waiting === 0) finish();
      };
      listeners.set(worker, listener);
      worker.on('message', listener);
      waiting++;
      // One worker (the first) also purges the shared tier and tells the other gateways.
      worker.send({ type: 'tollgate:cache-purge', id, ...purge, ...(waiting === 1 ? { publish: true } : {}) });
    }
    if (waiting === 0) finish();
  });
}

// Workers start in plain JavaScript, which loads the primary's stripped sources before the real main.
const WORKER_ENTRY = fileURLToPath(new URL('./worker-entry.mjs', import.meta.url));
const WORKER_MAIN = siblingModule(import.meta.url, './worker-main').href;

/**
 * The primary process: validates the config once, forks the workers that share its listening socket,
 * replaces the ones that die, and drains them all on SIGTERM/SIGINT. Resolves with the exit code.
 */
export async function runPrimary(options: PrimaryOptions): Promise<number> {
  const log = createLogger('info', { role: 'primary', pid: process.pid });
  const { logger } = log;

  // Before the config loads, so that its modules and its plugins' are stripped for the workers too.
  const strippedSources = prepareWorkerSources(logger);
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
  prepareConfigFolder(strippedSources, filepath);

  // Port 0 is resolved once here: a worker respawned after the last one died would otherwise listen
  // on a different random port.
  const port = config.listen.port === 0 ? await freePort(config.listen.host) : config.listen.port;
  const count = options.workers ?? (config.workers === 'auto' ? availableParallelism() : config.workers);
  cluster.schedulingPolicy = config.scheduling === 'os' ? cluster.SCHED_NONE : cluster.SCHED_RR;
  cluster.setupPrimary({ exec: WORKER_ENTRY, args: [WORKER_MAIN], execArgv: workerExecArgv(process.execArgv) });
  const hostMetrics = new HostMetrics();
  const metricsExport = config.telemetry?.metrics ? await startPrimaryMetricsExport(config.telemetry, config.telemetry.metrics.exportIntervalMs, hostMetrics, logger) : null;
  const healthChecks = new HealthChecks(config, logger, () => Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined));
  // A worker starts believing every target healthy: tell it which are not, once it is listening.
  cluster.on('listening', (worker) => healthChecks.greet(worker));
  // A worker reports its Redis state while it starts, before it is a slot's worker (a rolling reload).
  const redisStates = new WeakMap<Worker, RedisState>();
  cluster.on('fork', (worker) =>
    worker.on('message', (message: unknown) => {
      if (isWorkerMessage(message) && message.type === 'tollgate:redis') redisStates.set(worker, message);
    }),
  );
  // Host-wide rate-limit state lives here, so it is shared by all workers and outlives reloads.
  // Its size is fixed at start: a reload does not resize it.
  const limitStore = serveHostLimits(new MemoryLimitStore(config.hostLimits.maxKeys));
  hostMetrics.watchRateLimitKeys(() => limitStore.size);
  // Sending to a worker that has just died fails with EPIPE on the worker object; unhandled, that
  // 'error' would take the primary down with it. Its exit is handled where it belongs.
  cluster.on('fork', (worker) => worker.on('error', (error: Error) => logger.debug({ err: error, workerPid: worker.process.pid }, 'message to a worker failed')));

  const slots: Slot[] = Array.from({ length: count }, (_, index) => ({
    id: index + 1,
    worker: null,
    startedAt: 0,
    ready: false,
    failures: 0,
    lastFatal: null,
    respawnTimer: null,
    redis: null,
  }));
  // A plugin's gw.cache.purge in one worker: relayed to every worker, the total told to the asker.
  cluster.on('fork', (worker) =>
    worker.on('message', (message: { type?: string; id?: number } & Partial<Record<'url' | 'prefix' | 'tag', string>>) => {
      if (message?.type !== 'tollgate:cache-purge-request') return;
      const { type: _type, id, ...fields } = message;
      if (purgeProblem(fields) !== null) return;
      const target = fields as PurgeTarget;
      void broadcastPurge(slots.flatMap((slot) => (slot.worker ? [slot.worker] : [])), target).then((outcome) => {
        if (worker.isConnected()) worker.send({ type: 'tollgate:cache-purge-result', id, ...outcome });
      });
    }),
  );
  let started = false;
  let stopping = false;
  let exitCode = 0;
  let admin: Server | null = null;
  const startedAt = Date.now();

  return new Promise<number>((resolve) => {
    const finish = (code: number): void => {
      // The last interval's restarts and reloads leave before the primary does.
      void Promise.resolve(metricsExport?.shutdown())
        .then(() => log.close())
        .then(() => resolve(code));
    };

    const mallocEnv = workerMallocEnv(process.env);
    const envFor = (slot: Slot): Record<string, string> => ({
      ...mallocEnv,
      [ENV_CONFIG]: filepath,
      [ENV_WORKER]: String(slot.id),
      [ENV_PORT]: String(port),
      [ENV_WORKERS]: String(count),
      ...(strippedSources === null ? {} : { [ENV_STRIPPED_SOURCES]: strippedSources }),
    });

    /** Makes `worker` the slot's worker: its messages and its exit are the slot's from now on. */
    const adopt = (slot: Slot, worker: Worker, ready: boolean): void => {
      slot.respawnTimer = null;
      slot.ready = ready;
      slot.lastFatal = null;
      slot.startedAt = Date.now();
      slot.worker = worker;
      slot.redis = redisStates.get(worker) ?? null;
      worker.on('message', (message: unknown) => {
        if (!isWorkerMessage(message)) return;
        if (message.type === 'tollgate:fatal') slot.lastFatal = `${message.code}: ${message.message}`;
        if (message.type === 'tollgate:ready') onReady(slot, message.port);
        if (message.type === 'tollgate:redis' && slot.worker === worker) slot.redis = message;
      });
      worker.on('exit', (code, signal) => onExit(slot, worker, code, signal));
    };

    const fork = (slot: Slot): void => adopt(slot, cluster.fork(envFor(slot)), false);

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
      hostMetrics.restarts.inc();
      slot.respawnTimer = setTimeout(() => fork(slot), delay);
    };

    const stopAll = (reason: string, code: number): void => {
      if (stopping) return;
      stopping = true;
      healthChecks.stop();
      exitCode = code;
      admin?.close();
      const live = slots.filter((slot) => slot.worker !== null);
      logger.info({ reason, workers: live.length }, `shutting down (${reason}): draining ${live.length} worker(s)`);
      for (const slot of slots) if (slot.respawnTimer) clearTimeout(slot.respawnTimer);
      if (live.length === 0) {
        finish(exitCode);
        return;
      }
      const drain: PrimaryMessage = { type: 'tollgate:drain' };
      for (const slot of live) slot.worker!.send(drain);
      for (const trial of trials) trial.send(drain);
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

    // Reload: validate the config (and the plugin code it imports) in a fresh process, then replace
    // the workers one at a time: a new worker must be ready before the old one is told to drain.
    let reloading = false;
    const trials = new Set<Worker>();

    /** Replaces the slot's worker; resolves with null, or why the new worker did not start. */
    const rollSlot = (slot: Slot): Promise<string | null> =>
      new Promise((resolve) => {
        const fresh = cluster.fork(envFor(slot));
        trials.add(fresh);
        let fatal: string | null = null;
        const onMessage = (message: unknown): void => {
          if (!isWorkerMessage(message)) return;
          if (message.type === 'tollgate:fatal') fatal = `${message.code}: ${message.message}`;
          if (message.type !== 'tollgate:ready') return;
          fresh.off('message', onMessage);
          fresh.off('exit', onFailure);
          trials.delete(fresh);
          const old = slot.worker;
          if (slot.respawnTimer) clearTimeout(slot.respawnTimer);
          adopt(slot, fresh, true);
          logger.info({ worker: slot.id, workerPid: fresh.process.pid, replacedPid: old?.process.pid ?? null }, `worker ${slot.id} replaced`);
          // The old worker is no longer the slot's: its exit will not be taken for a crash.
          old?.send({ type: 'tollgate:drain' } satisfies PrimaryMessage);
          resolve(null);
        };
        const onFailure = (code: number | null, signal: string | null): void => {
          trials.delete(fresh);
          const problem = `the new worker ${slot.id} did not start (${fatal ?? (signal ? `killed by ${signal}` : `exit code ${code}`)})`;
          if (!stopping) logger.error({ worker: slot.id, code, signal, reason: fatal }, `reload: ${problem}; the running workers keep serving`);
          resolve(problem);
        };
        fresh.on('message', onMessage);
        fresh.once('exit', onFailure);
      });

    let reloads = 0;
    const reload = async (trigger: string): Promise<ReloadOutcome> => {
      if (stopping || !started || reloading) {
        const problem = reloading ? 'a reload is already in progress' : 'the gateway is starting or stopping';
        logger.warn({ trigger }, `reload ignored: ${problem}`);
        return { result: 'busy', problem };
      }
      reloading = true;
      try {
        logger.info({ trigger, config: filepath }, `reload requested (${trigger}): validating ${filepath}`);
        const check = await checkConfig(filepath);
        if (!check.ok) {
          logger.error({ trigger, problem: check.output }, `reload rejected; still serving the previous config:\n${check.output}`);
          hostMetrics.reloads.inc({ result: 'rejected' });
          return { result: 'rejected', problem: check.output };
        }
        for (const slot of slots) {
          if (stopping) return { result: 'busy', problem: 'the gateway is stopping' };
          const problem = await rollSlot(slot);
          if (problem !== null) {
            hostMetrics.reloads.inc({ result: 'failed' });
            return { result: 'failed', problem };
          }
        }
        reloads++;
        hostMetrics.reloads.inc({ result: 'reloaded' });
        logger.info({ workers: slots.map((s) => s.worker?.process.pid) }, 'reload complete');
        return { result: 'reloaded' };
      } finally {
        reloading = false;
      }
    };
    process.on('SIGHUP', () => void reload('SIGHUP'));
    if (options.watch) watchConfig(filepath, () => void reload('config file changed'));

    const begin = async (): Promise<void> => {
      if (config.admin) {
        try {
          const listener = await startAdmin(config.admin, {
            readiness: () => {
              const reasons: string[] = [];
              if (!started) reasons.push('starting');
              if (stopping) reasons.push('stopping');
              for (const slot of slots) {
                if (!slot.ready || slot.worker === null) reasons.push(`worker ${slot.id} is not ready${slot.lastFatal ? ` (${slot.lastFatal})` : ''}`);
                else if (config.redis?.required && slot.redis?.up !== true) {
                  reasons.push(`worker ${slot.id}: redis ${slot.redis === null ? 'not connected yet' : `unavailable: ${slot.redis.problem ?? 'unknown'}`}`);
                }
              }
              return reasons;
            },
            reload,
            metrics: async () => ({ contentType: hostMetrics.contentType, text: await hostMetrics.text() }),
            purgeCache: (purge) => broadcastPurge(slots.flatMap((slot) => (slot.worker ? [slot.worker] : [])), purge),
            status: () => ({
              pid: process.pid,
              config: filepath,
              listen: { host: config.listen.host, port },
              startedAt: new Date(startedAt).toISOString(),
              state: stopping ? 'stopping' : reloading ? 'reloading' : started ? 'serving' : 'starting',
              reloads,
              workers: slots.map((slot) => ({
                slot: slot.id,
                pid: slot.worker?.process.pid ?? null,
                ready: slot.ready && slot.worker !== null,
                upForMs: slot.worker ? Date.now() - slot.startedAt : 0,
                ...(config.redis ? { redis: slot.redis === null ? 'unknown' : slot.redis.up ? 'up' : 'down' } : {}),
                ...(config.redis && slot.redis?.problem && !slot.redis.up ? { redisProblem: slot.redis.problem } : {}),
                recentFailures: slot.failures,
              })),
            }),
          });
          admin = listener;
          logger.info({ admin: `${config.admin.host}:${listener.port}`, adminPort: listener.port }, `admin listener on ${config.admin.host}:${listener.port}`);
        } catch (error) {
          const why = (error as NodeJS.ErrnoException).code === 'EADDRINUSE' ? 'the address is already in use' : (error as Error).message;
          process.stderr.write(`tollgate: [TG_ERR_LISTEN] cannot listen on ${config.admin.host}:${config.admin.port} (admin): ${why}\n`);
          finish(1);
          return;
        }
      }
      for (const slot of slots) fork(slot);
    };
    void begin();
  });
}

/**
 * The primary's own metrics (worker restarts, reloads, host rate-limit keys) over OTLP, as each
 * worker exports its own. A failure to start is logged and the gateway serves without this export.
 */
async function startPrimaryMetricsExport(telemetry: ParsedTelemetry, intervalMs: number | undefined, hostMetrics: HostMetrics, logger: Logger): Promise<MetricsExport | null> {
  try {
    return await startMetricsExport(telemetry, intervalMs, null, logger, hostMetrics.own);
  } catch (error) {
    logger.error({ err: error }, `telemetry: the primary's metrics export did not start (${(error as Error).message}); its metrics stay on /metrics only`);
    return null;
  }
}
