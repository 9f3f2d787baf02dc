/**
 * A process of its own that sends GETs on a fixed schedule and reports their latencies, so that
 * whatever else the benchmark process is busy with (sending large bodies) cannot delay it.
 * argv: port, rate (per second), seconds. Answers with { latencies, errors } over IPC.
 */
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';

const [port, rate, seconds] = process.argv.slice(2).map(Number) as [number, number, number];
const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 64 });
const latencies: number[] = [];
let errors = 0;
const sent: Promise<void>[] = [];
const start = performance.now();
for (let i = 0; i < rate * seconds; i++) {
  const due = start + (i * 1000) / rate;
  const wait = due - performance.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, Math.ceil(wait)));
  // Timed from when it was due, or from when it was sent if the timer fired late (open loop); timers
  // round to whole milliseconds, hence the ceil above.
  const sentAt = Math.max(due, performance.now());
  sent.push(
    pool.request({ path: '/items', method: 'GET' }).then(async (res) => {
      await res.body.dump();
      if (res.statusCode !== 200) errors++;
      latencies.push(performance.now() - sentAt);
    }, () => {
      errors++;
    }),
  );
}
await Promise.all(sent);
await pool.close();
process.send!({ latencies, errors }, () => process.exit(0));
