import cluster from 'node:cluster';
import type { Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../config/load-config.ts';
import { GatewayError } from '../errors.ts';
import { Gateway } from '../gateway.ts';
import { createListener, type Listener } from '../http/listener.ts';
import { createLogger, type LoggerHandle } from '../log/logger.ts';
import { ENV_CONFIG, ENV_PORT, ENV_WORKER, ENV_WORKERS, type PrimaryMessage, type WorkerMessage } from './messages.ts';
import type { HealthMessage } from './health-checks.ts';

/**
 * A cluster worker: loads the config the primary validated, sets up plugins and pools, serves on the
 * socket the primary shares, and drains when told to.
 */
export async function runWorker(): Promise<void> {
  const workerId = Number(process.env[ENV_WORKER] ?? cluster.worker?.id ?? 1);
  const log = createLogger('info', { role: 'worker', worker: workerId, pid: process.pid });
  const { logger } = log;

  process.on('uncaughtException', (error) => fail(log, error, 'uncaught exception'));
  process.on('unhandledRejection', (reason) => {
    // A plugin's stray promise must not take every other request on this worker down with it.
    logger.error({ err: reason }, 'unhandled promise rejection (a plugin forgot to await or catch?)');
  });

  // Listen for stop requests before starting: one that arrives while plugins are still setting up
  // (the primary giving up on a failed start, say) must not be lost.
  let started = false;
  let stopRequested = false;
  const requestStop = (): void => {
    stopRequested = true;
    if (started) void drain();
  };
  process.on('message', (message: PrimaryMessage | HealthMessage) => {
    if (message?.type === 'tollgate:drain') requestStop();
    if (message?.type === 'tollgate:health') gateway?.upstreams.get(message.upstream)?.setDown(message.origin, !message.healthy);
  });
  // The primary is gone (killed, say): nobody will restart or stop us, so finish up and leave.
  process.on('disconnect', requestStop);

  let gateway: Gateway | undefined;
  let server!: Server;
  let listener!: Listener;
  try {
    const { config } = await loadConfig({ path: process.env[ENV_CONFIG] });
    logger.level = config.log.level;
    gateway = await Gateway.create(config, { logger, workerId, workerCount: Number(process.env[ENV_WORKERS] ?? 1) });
    listener = createListener(config, gateway.handle, gateway.upgrade);
    server = listener.server;
    const address = { port: Number(process.env[ENV_PORT] ?? config.listen.port), host: config.listen.host };
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => {
        const why = error.code === 'EADDRINUSE' ? 'the address is already in use' : error.code === 'EACCES' ? 'permission denied' : error.message;
        reject(new GatewayError('TG_ERR_LISTEN', `cannot listen on ${address.host}:${address.port}: ${why}`, { cause: error }));
      });
      server.listen(address, resolve);
    });
  } catch (error) {
    fail(log, error, 'startup failed');
    return;
  }

  let draining = false;
  const drain = async (): Promise<void> => {
    if (draining) return;
    draining = true;
    // Closed means every connection has ended, not merely that no request is in flight: a connection
    // accepted just before close() may still bring one, and the pools must outlive it.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    listener.closeIdle();
    logger.info({ inflight: gateway.inflight }, 'draining');
    const deadline = setTimeout(() => {
      logger.warn({ inflight: gateway.inflight }, 'drain timeout reached; closing remaining connections');
      listener.closeAll();
    }, gateway.config.shutdown.drainTimeout);
    await gateway.drain();
    await closed;
    clearTimeout(deadline);
    await gateway.close();
    logger.info('drained');
    await log.close();
    process.exit(0);
  };
  started = true;
  if (stopRequested) {
    void drain();
    return;
  }
  send({ type: 'tollgate:ready', port: (server.address() as AddressInfo).port });
}

/** Logs why the worker cannot go on, tells the primary, and exits once the message is out. */
function fail(log: LoggerHandle, error: unknown, what: string): void {
  const gatewayError = GatewayError.is(error) ? error : null;
  const message = error instanceof Error ? error.message : String(error);
  log.logger.fatal({ err: error, code: gatewayError?.code }, `${what}: ${message}`);
  void log.close().then(() =>
    send({ type: 'tollgate:fatal', code: gatewayError?.code ?? 'TG_ERR_INTERNAL', message }, () => process.exit(1)),
  );
}

function send(message: WorkerMessage, then?: () => void): void {
  if (process.connected && process.send) process.send(message, undefined, {}, then);
  else then?.();
}
