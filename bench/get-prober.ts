/**
 * A process of its own that sends GETs on a fixed schedule and reports their latencies, so that
 * whatever else the benchmark process is busy with (sending large bodies) cannot delay it.
 * argv: port, rate (per second), seconds. Answers with { latencies, errors } over IPC.
 */
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { openLoop } from './open-loop.ts';

const [port, rate, seconds] = process.argv.slice(2).map(Number) as [number, number, number];
const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 64 });
const latencies: number[] = [];
let errors = 0;
await openLoop(rate, seconds, (sentAt) =>
  pool.request({ path: '/items', method: 'GET' }).then(async (res) => {
    await res.body.dump();
    if (res.statusCode !== 200) errors++;
    latencies.push(performance.now() - sentAt);
  }, () => {
    errors++;
  }),
);
await pool.close();
process.send!({ latencies, errors }, () => process.exit(0));
