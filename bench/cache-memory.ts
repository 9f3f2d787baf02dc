/**
 * `npm run bench:cache-memory`: what a cached entry costs beyond its body. Stores 50,000 entries of
 * a 1 KiB body with typical headers and compares the heap and buffer memory before and after.
 */
import { CacheStore } from '../plugins/cache/cache-store.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc (npm run bench:cache-memory does)');
const N = 50_000;
const store = new CacheStore(1024 * 1024 * 1024);
const body = Buffer.alloc(1024, 120);
gc();
const before = process.memoryUsage();
for (let i = 0; i < N; i++) {
  const primary = `GET http://api.example.com/items/${i}?page=1`;
  const headers = { 'content-type': 'application/json', 'content-length': '1024', 'cache-control': 'max-age=60', date: new Date().toUTCString(), etag: `"${i}"` };
  store.set(
    { key: primary, primary, path: `/items/${i}`, status: 200, headers, body: Buffer.from(body), receivedAt: Date.now(), initialAgeMs: 0, freshnessMs: 60_000, staleIfErrorMs: 0, staleWhileRevalidateMs: 0, mustRevalidate: false, tags: [] },
    [],
  );
}
gc();
const after = process.memoryUsage();
const heap = (after.heapUsed - before.heapUsed) / N;
const buffers = (after.arrayBuffers - before.arrayBuffers) / N;
console.log(`${store.size} entries of a 1024 B body: ${heap.toFixed(0)} B of heap and ${buffers.toFixed(0)} B of buffers each;`);
console.log(`overhead beyond the body: ${(heap + buffers - 1024).toFixed(0)} B per entry; the store's own size estimate: ${(store.bytes / N).toFixed(0)} B per entry`);
