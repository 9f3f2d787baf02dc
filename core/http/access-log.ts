import type { GatewayError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';

/** Milliseconds as access lines carry them: two decimals. */
export function roundMs(ms: number): number {
  return Math.round(ms * 100) / 100;
}

/**
 * Writes one access line (`msg: "request"`): at `warn` when the gateway answered with a 5xx error of
 * its own, else at `info`. Requests and WebSocket upgrades share it, so both read the same.
 */
export function writeAccessLine(logger: Logger, entry: Record<string, unknown>, error: GatewayError | null): void {
  if (error !== null && error.status >= 500) logger.warn(entry, 'request');
  else logger.info(entry, 'request');
}
