import { performance } from 'node:perf_hooks';

/**
 * Sends `rate × seconds` requests on a fixed schedule, whether or not earlier ones were answered
 * (an open loop: a stalled server shows as latency, not as fewer requests). `send` gets the time
 * each request was due, or was sent if the timer fired late, to measure latency from; resolves
 * when every request has settled.
 */
export async function openLoop(rate: number, seconds: number, send: (sentAt: number) => Promise<void>): Promise<void> {
  const sent: Promise<void>[] = [];
  const start = performance.now();
  for (let i = 0; i < rate * seconds; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    // Timers round to whole milliseconds: a rounded-down wait would send before the due time.
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, Math.ceil(wait)));
    sent.push(send(Math.max(due, performance.now())));
  }
  await Promise.all(sent);
}
