import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export interface LoggerHandle {
  logger: Logger;
  /** Writes out what is buffered; call before the process exits. */
  flush(): void;
}

/** JSON lines on stdout, written asynchronously so logging never blocks the event loop. */
export function createLogger(level: LevelWithSilent, bindings: Record<string, unknown>): LoggerHandle {
  const destination = pino.destination({ dest: 1, sync: false });
  const logger = pino(
    { level, base: bindings, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } },
    destination,
  );
  return {
    logger,
    flush() {
      try {
        destination.flushSync();
      } catch {
        // Not open yet, or stdout already closed: nothing left that could be written.
      }
    },
  };
}
