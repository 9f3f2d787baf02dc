import { expect } from 'chai';
import type { Logger } from 'pino';
import { shutdownWithin } from '../../core/telemetry/bounded-shutdown.ts';

/** A logger that keeps its warnings. */
function warnings(): { logger: Logger; lines: unknown[][] } {
  const lines: unknown[][] = [];
  return { logger: { warn: (...args: unknown[]) => lines.push(args) } as unknown as Logger, lines };
}

const MESSAGES = { late: 'late', failed: 'failed' };

describe('telemetry shutdown', () => {
  it('waits for the flush when it finishes in time, and says nothing', async () => {
    const { logger, lines } = warnings();
    let flushed = false;
    await shutdownWithin(new Promise((resolve) => setTimeout(() => resolve((flushed = true)), 10)), 1_000, logger, MESSAGES);
    expect(flushed).to.equal(true);
    expect(lines).to.deep.equal([]);
  });

  it('gives up on a flush that hangs (a dead collector) at the deadline, with a warning', async () => {
    const { logger, lines } = warnings();
    await shutdownWithin(new Promise(() => {}), 20, logger, MESSAGES);
    expect(lines).to.deep.equal([['late']]);
  });

  it('logs a failed flush instead of throwing it', async () => {
    const { logger, lines } = warnings();
    const error = new Error('collector said no');
    await shutdownWithin(Promise.reject(error), 1_000, logger, MESSAGES);
    expect(lines).to.deep.equal([[{ err: error }, 'failed']]);
  });
});
