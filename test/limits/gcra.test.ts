import { expect } from 'chai';
import pino from 'pino';
import { compileLimit, decide, type CompiledLimit } from '../../core/limits/gcra.ts';
import { MemoryLimitStore } from '../../core/limits/memory-store.ts';
import { RedisLimits } from '../../core/limits/redis-limits.ts';
import { RedisConnection } from '../../core/redis/redis-client.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';

const limit = (count: number, windowMs: number, burst = count): CompiledLimit =>
  compileLimit({ name: `${count}`, limit: count, windowMs, burst, onStoreError: 'failOpen' });

describe('gcra', () => {
  it('lets a burst of `limit` through at once, then one request per window / limit', () => {
    const limits = [limit(10, 1000)];
    const tats = [0];
    const now = 1_000_000_000;
    const first10 = Array.from({ length: 10 }, () => decide(limits, tats, now, 1));
    expect(first10.every((d) => d.allowed)).to.equal(true);
    expect(first10.map((d) => d.remaining[0])).to.deep.equal([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    const eleventh = decide(limits, tats, now, 1);
    expect(eleventh.allowed).to.equal(false);
    expect(eleventh.retryAfterMs).to.equal(100);
    expect(eleventh.resetMs[0]).to.equal(1000);
    expect(decide(limits, tats, now + 99_000, 1).allowed).to.equal(false);
    expect(decide(limits, tats, now + 100_000, 1).allowed).to.equal(true);
  });

  it('counts a request against every limit or none: a request one limit denies leaves the others untouched', () => {
    const limits = [limit(2, 1000), limit(100, 60_000)];
    const tats = [0, 0];
    const now = 5_000_000;
    decide(limits, tats, now, 1);
    decide(limits, tats, now, 1);
    const denied = decide(limits, tats, now, 1);
    expect(denied.allowed).to.equal(false);
    expect(denied.remaining).to.deep.equal([0, 98]);
    expect(tats[1]).to.equal(now + 2 * 600_000);
  });

  it('keeps at most burst + elapsed × rate over any span (never more, never less)', () => {
    const limits = [limit(5, 1000, 3)];
    const tats = [0];
    let passed = 0;
    // A request every 10 ms for 2 s: 3 at once, then one per 200 ms.
    for (let t = 0; t <= 2_000_000; t += 10_000) if (decide(limits, tats, 10_000_000 + t, 1).allowed) passed++;
    expect(passed).to.equal(3 + 10);
  });
});

describe('memory limit store', () => {
  it('forgets nothing it still needs and keeps buckets apart', () => {
    const store = new MemoryLimitStore();
    const limits = [limit(2, 60_000)];
    expect(store.consume('a', limits).allowed).to.equal(true);
    expect(store.consume('a', limits).allowed).to.equal(true);
    expect(store.consume('a', limits).allowed).to.equal(false);
    expect(store.consume('b', limits).allowed).to.equal(true);
    expect(store.size).to.equal(2);
  });
});

describe('redis limit script', () => {
  let redis: TestRedis;
  let connection: RedisConnection;

  before(async () => {
    redis = await startRedis();
    connection = new RedisConnection(
      { url: redis.url, tls: false, keyPrefix: 'test:', commandTimeout: 500, connectTimeout: 2000 },
      pino({ level: 'silent' }),
    );
    await connection.whenReady(2000);
  });

  after(async () => {
    await connection?.close();
    await redis?.stop();
  });

  it('decides like the in-memory GCRA: the burst, then 429s with the time to wait', async () => {
    const store = new RedisLimits(connection, 1);
    const limits = [limit(5, 60_000)];
    const decisions = [];
    for (let i = 0; i < 7; i++) decisions.push(await store.consume(['{k1}:a'], limits));
    expect(decisions.map((d) => d.allowed)).to.deep.equal([true, true, true, true, true, false, false]);
    expect(decisions.map((d) => d.remaining[0])).to.deep.equal([4, 3, 2, 1, 0, 0, 0]);
    // One request's worth of the window: 12 s, less the few ms the test took.
    expect(decisions[5]!.retryAfterMs).to.be.within(11_000, 12_000);
    expect(decisions[4]!.resetMs[0]).to.be.within(59_000, 60_000);
  });

  it('keeps state in one key per limit, prefixed, expiring once the quota is whole again', async () => {
    await new RedisLimits(connection, 2).consume(['{k2}:a', '{k2}:b'], [limit(5, 60_000), limit(10, 3_600_000)]);
    const ttl = Number(await redis.cli('pttl', 'test:{k2}:a'));
    expect(ttl).to.be.within(11_000, 12_000);
    expect(Number(await redis.cli('pttl', 'test:{k2}:b'))).to.be.within(359_000, 360_000);
  });

  it('loads the script again after Redis forgets it (NOSCRIPT)', async () => {
    const store = new RedisLimits(connection, 1);
    await store.consume(['{k3}:a'], [limit(5, 60_000)]);
    await redis.cli('script', 'flush');
    const decision = await store.consume(['{k3}:a'], [limit(5, 60_000)]);
    expect(decision.remaining[0]).to.equal(3);
  });

  it('fails fast with TG_ERR_REDIS_UNAVAILABLE when Redis is frozen, then stays away for a cooldown', async () => {
    const store = new RedisLimits(connection, 1);
    redis.freeze();
    try {
      const error = await store.consume(['{k4}:a'], [limit(5, 60_000)]).catch((e: unknown) => e);
      expect(error).to.have.property('code', 'TG_ERR_REDIS_UNAVAILABLE');
      const before = connection.failures;
      const again = await store.consume(['{k4}:a'], [limit(5, 60_000)]).catch((e: unknown) => e);
      expect(again).to.have.property('code', 'TG_ERR_REDIS_UNAVAILABLE');
      expect((again as { logDetail: string }).logDetail).to.equal('redis: recent commands failed');
      expect(connection.failures).to.equal(before + 1);
    } finally {
      redis.thaw();
    }
  });
});
