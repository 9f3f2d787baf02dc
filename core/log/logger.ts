import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export interface LoggerHandle {
  logger: Logger;
  /** Writes out what is buffered (giving up after a second); await it right before the process exits. */
  close(): Promise<void>;
}

const FLUSH_DEADLINE_MS = 1_000;

export interface LoggerOptions {
  /** File descriptor written to (stdout). */
  fd?: number;
  /**
   * Bytes held while the reader of stdout is slower than the log rate; lines beyond are dropped and
   * counted. An upstream outage under load logs every failed request, and an unbounded buffer would
   * grow by megabytes a second until the worker ran out of memory, in the middle of the outage.
   */
  maxBufferedBytes?: number;
  /** How often a count of dropped lines is logged, when there are any. */
  dropNoticeEveryMs?: number;
}

/**
 * pino's error serializer, minus the command ioredis attaches to a Redis reply error: a failed
 * AUTH's arguments are the password, and other commands' keys carry request data.
 */
export function serializeError(error: unknown): unknown {
  const serialized = pino.stdSerializers.err(error as Error) as Record<string, unknown>;
  if (serialized !== null && typeof serialized === 'object' && 'command' in serialized) delete serialized.command;
  return serialized;
}

/** JSON lines on stdout, written asynchronously so logging never blocks the event loop. */
export function createLogger(level: LevelWithSilent, bindings: Record<string, unknown>, options: LoggerOptions = {}): LoggerHandle {
  const destination = pino.destination({ dest: options.fd ?? 1, sync: false, maxLength: options.maxBufferedBytes ?? 16 * 1024 * 1024, contentMode: 'buffer' });
  // A log reader that goes away (a closed pipe) must cost us the logs, never the gateway: without
  // a listener the EPIPE would be an uncaught error.
  let broken = false;
  let closing: Promise<void> | undefined;
  destination.on('error', () => {
    broken = true;
  });
  let dropped = 0;
  destination.on('drop', () => {
    dropped++;
  });
  const logger = pino(
    { level, base: bindings, timestamp: isoTimeByMillisecond(), formatters: { level: (label) => ({ level: label }) }, serializers: { err: serializeError } },
    asBuffers(destination),
  );
  const dropNotice = setInterval(() => {
    if (dropped === 0) return;
    const lines = dropped;
    dropped = 0;
    logger.warn({ droppedLines: lines }, `${lines} log lines dropped: stdout did not keep up with the log rate`);
  }, options.dropNoticeEveryMs ?? 5_000);
  dropNotice.unref();
  return {
    logger,
    close() {
      closing ??= closeDestination();
      return closing;
    },
  };

  async function closeDestination(): Promise<void> {
    // Anything logged from here on would write to a closing destination.
    clearInterval(dropNotice);
    logger.level = 'silent';
    if (!broken) {
      // end() waits for writes still in flight (flush() does not), then closes.
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(deadline);
          resolve();
        };
        const deadline = setTimeout(done, FLUSH_DEADLINE_MS);
        destination.once('close', done);
        destination.once('error', done);
        destination.end();
      });
    }
    // pino flushes once more, synchronously, when the process exits, and sonic-boom's flushSync
    // retries a failing write (EPIPE: the reader is gone) forever. What could be written is written.
    destination.flushSync = () => {};
  }
}

/**
 * pino writes each line as a string. sonic-boom's string mode measures the UTF-8 length of the whole
 * pending chunk (up to 16 KiB, flattening it) for every line appended, which under an access line
 * per request cost more than writing the lines did; its buffer mode keeps lengths as it goes. Each
 * line becomes a Buffer (small ones are slices of Node's pool) on its way in.
 */
function asBuffers(destination: ReturnType<typeof pino.destination>): { write(line: string): boolean } {
  return { write: (line) => destination.write(Buffer.from(line) as unknown as string) };
}

/**
 * pino's ISO `time` field, made once per millisecond: a worker writing an access line per request
 * would otherwise format a Date for each. Timed in a loop of access lines, pino took 1.5 µs a line
 * with `stdTimeFunctions.isoTime` and 1.0 µs with this.
 */
export function isoTimeByMillisecond(now: () => number = Date.now): () => string {
  let lastMs = -1;
  let field = '';
  return () => {
    const ms = now();
    if (ms !== lastMs) {
      lastMs = ms;
      field = `,"time":"${new Date(ms).toISOString()}"`;
    }
    return field;
  };
}
