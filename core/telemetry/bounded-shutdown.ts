import type { Logger } from 'pino';

/**
 * Waits for a telemetry shutdown (a last flush or export) for at most `deadlineMs`: a worker that is
 * draining must not hang on a dead collector. Running late or failing is logged, never thrown.
 */
export async function shutdownWithin(work: Promise<unknown>, deadlineMs: number, logger: Logger, messages: { late: string; failed: string }): Promise<void> {
  let timer!: NodeJS.Timeout;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      logger.warn(messages.late);
      resolve();
    }, deadlineMs);
  });
  const settled = work.then(
    () => undefined,
    (error: unknown) => logger.warn({ err: error }, messages.failed),
  );
  await Promise.race([settled, deadline]);
  clearTimeout(timer);
}
