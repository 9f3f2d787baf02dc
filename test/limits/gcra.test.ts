import { expect } from 'chai';
import pino from 'pino';
import { compileLimit, refund, take, type CompiledLimit, type Decision } from '../../core/limits/gcra.ts';
import { LeasedLimits, type SharedLimits } from '../../core/limits/leased-limits.ts';
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
    const first10 = Array.from({ length: 10 }, () => take(limits, tats, now));
    expect(first10.every((d) => d.allowed)).to.equal(true);
    expect(first10.map((d) => d.remaining[0])).to.deep.equal([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    const eleventh = take(limits, tats, now);
    expect(eleventh).to.include({ allowed: false, granted: 0, retryAfterMs: 100 });
    expect(eleventh.resetMs[0]).to.equal(1000);
    expect(take(limits, tats, now + 99_000).allowed).to.equal(false);
    expect(take(limits, tats, now + 100_000).allowed).to.equal(true);
  });

  it('counts a request against every limit or none: a request one limit denies leaves the others untouched', () => {
    const limits = [limit(2, 1000), limit(100, 60_000)];
    const tats = [0, 0];
    const now = 5_000_000;
    take(limits, tats, now);
    take(limits, tats, now);
    const denied = take(limits, tats, now);
    expect(denied.allowed).to.equal(false);
    expect(denied.remaining).to.deep.equal([0, 98]);
    expect(tats[1]).to.equal(now + 2 * 600_000);
  });

  it('keeps at most burst + elapsed × rate over any span (never more, never less)', () => {
    const limits = [limit(5, 1000, 3)];
    const tats = [0];
    let passed = 0;
    // A request every 10 ms for 2 s: 3 at once, then one per 200 ms.
    for (let t = 0; t <= 2_000_000; t += 10_000) if (take(limits, tats, 10_000_000 + t).allowed) passed++;
    expect(passed).to.equal(3 + 10);
  });

  it('reserves ahead only while a bucket has plenty of room, and at most a sixteenth of it', () => {
    const limits = [limit(1000, 60_000)];
    const tats = [0];
    const now = 1_000_000;
    expect(take(limits, tats, now, 33).granted).to.equal(33);
    const small = [limit(63, 60_000)];
    expect(take(small, [0], now, 33).granted, 'room below 64: one at a time').to.equal(1);
    const medium = [limit(160, 60_000)];
    expect(take(medium, [0], now, 33).granted, '160 / 16').to.equal(11);
  });

  it('refunds reserved requests as if they had never been taken', () => {
    const limits = [limit(1000, 60_000)];
    const tats = [0];
    take(limits, tats, 1_000_000, 33);
    refund(limits, tats, 32);
    expect(take(limits, tats, 1_000_000).remaining[0]).to.equal(998);
  });
});

describe('memory limit store', () => {
  it('keeps buckets apart and forgets a bucket once its quota is whole again', async () => {
    const store = new MemoryLimitStore();
    const limits = [limit(2, 60_000)];
    expect(store.take('a', limits).allowed).to.equal(true);
    expect(store.take('a', limits).allowed).to.equal(true);
    expect(store.take('a', limits).allowed).to.equal(false);
    expect(store.take('b', limits).allowed).to.equal(true);
    store.refund('b', limits, 1);
    expect(store.size, 'b is whole again').to.equal(1);
  });
});

describe('leased limits', () => {
  /** A store that counts what it is asked, in front of a real memory store. */
  const counting = (limits: CompiledLimit[], store = new MemoryLimitStore()) => {
    const calls = { take: 0, refund: 0, refunded: 0 };
    const shared: SharedLimits = {
      take: (bucket, want) => (calls.take++, store.take(bucket, limits, want)),
      refund: (bucket, tokens) => {
        calls.refund++;
        calls.refunded += tokens;
        store.refund(bucket, limits, tokens);
      },
    };
    return { shared, calls, store };
  };

  it('serves a busy bucket from its reserve: after its first request, the store is asked once per 33', () => {
    const { shared, calls } = counting([limit(100_000, 3_600_000)]);
    const leased = new LeasedLimits(shared, { minLease: 32, maxLease: 32, leaseMs: 100 });
    for (let i = 0; i < 330; i++) expect((leased.consume('k') as Decision).allowed).to.equal(true);
    expect(calls.take).to.equal(1 + 10);
    leased.close();
    expect(calls.refunded, "the one left over goes back on close").to.equal(1);
  });

  it('grows a busy bucket\'s reserve with its pace, so that a fast bucket asks the store rarely', () => {
    const { shared, calls } = counting([limit(100_000_000, 3_600_000)]);
    const wants: number[] = [];
    const leased = new LeasedLimits({ ...shared, take: (bucket, want) => (wants.push(want), shared.take(bucket, want)) }, { minLease: 32, maxLease: 256, leaseMs: 10_000 });
    for (let i = 0; i < 2000; i++) expect((leased.consume('k') as Decision).allowed).to.equal(true);
    // Each reserve was used up at once, so each next one doubles, up to maxLease.
    expect(wants.slice(0, 6)).to.deep.equal([1, 33, 65, 129, 257, 257]);
    // Takes serve 1, 33, 65, 129, then 257 requests each.
    expect(calls.take).to.equal(4 + Math.ceil((2000 - (1 + 33 + 65 + 129)) / 257));
    leased.close();
  });

  it('halves a reserve that expired unused, down to minLease', () => {
    const { shared } = counting([limit(100_000_000, 3_600_000)]);
    const wants: number[] = [];
    const leased = new LeasedLimits({ ...shared, take: (bucket, want) => (wants.push(want), shared.take(bucket, want)) }, { minLease: 8, maxLease: 64, leaseMs: 1000 });
    // A clock of the test's own: the bucket slows down without the test waiting for it.
    const realNow = performance.now;
    let now = realNow.call(performance);
    performance.now = () => now;
    try {
      // Takes serve 1, 9, 17 and 33 requests; the 61st asks for 1 + 64.
      for (let i = 0; i < 1 + 9 + 17 + 33 + 1; i++) leased.consume('k');
      expect(wants.at(-1)).to.equal(65);
      // The bucket slows to one request per 600 ms: each reserve expires mostly unused.
      for (const expected of [33, 17, 9, 9]) {
        now += 600;
        leased.consume('k');
        now += 600;
        leased.consume('k');
        expect(wants.at(-1)).to.equal(expected);
      }
    } finally {
      performance.now = realNow;
      leased.close();
    }
  });

  it('gives an expired reserve back before taking the next one, instead of carrying it over', () => {
    const { shared, calls } = counting([limit(100_000_000, 3_600_000)]);
    const leased = new LeasedLimits(shared, { minLease: 8, maxLease: 8, leaseMs: 1000 });
    const realNow = performance.now;
    let now = realNow.call(performance);
    performance.now = () => now;
    try {
      // The second request takes 1 + 8 and uses one of them: 7 left in reserve.
      leased.consume('k');
      leased.consume('k');
      leased.consume('k');
      now += 1500;
      leased.consume('k');
      expect(calls).to.include({ refund: 1, refunded: 7 });
      leased.close();
      expect(calls.refunded, 'the new reserve of 8 goes back on close').to.equal(7 + 8);
    } finally {
      performance.now = realNow;
    }
  });

  it('never lets two workers together past the limit, and gives unused reserves back so that none is lost', async () => {
    const limits = [limit(1000, 3_600_000)];
    const { shared, calls, store } = counting(limits);
    const [busy, idle] = [new LeasedLimits(shared, { minLease: 32, maxLease: 32, leaseMs: 20 }), new LeasedLimits(shared, { minLease: 32, maxLease: 32, leaseMs: 20 })];
    let allowed = 0;
    // The idle worker takes two requests and holds a reserve; the busy one then spends all the rest.
    for (let i = 0; i < 2; i++) if ((idle.consume('k') as Decision).allowed) allowed++;
    for (let i = 0; i < 1500; i++) if ((busy.consume('k') as Decision).allowed) allowed++;
    expect(allowed).to.be.below(1000);
    // The idle worker's unused reserve goes back after leaseMs, and is then there to take.
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(calls.refund).to.equal(1);
    for (let i = 0; i < 100; i++) if ((idle.consume('k') as Decision).allowed) allowed++;
    expect(allowed).to.equal(1000);
    expect(store.take('k', limits).allowed).to.equal(false);
    [busy, idle].forEach((w) => w.close());
  });

  it('reserves nothing for a bucket seen once, so that one-off clients cost no refunds', async () => {
    const { shared, calls } = counting([limit(100_000, 3_600_000)]);
    const leased = new LeasedLimits(shared, { minLease: 32, maxLease: 32, leaseMs: 10 });
    for (let i = 0; i < 50; i++) leased.consume(`client-${i}`);
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(calls).to.deep.equal({ take: 50, refund: 0, refunded: 0 });
    leased.close();
  });

  it('repeats a denial locally for up to leaseMs, with the Retry-After the store gave, without asking again', async () => {
    const { shared, calls } = counting([limit(1, 60_000)]);
    const leased = new LeasedLimits(shared, { minLease: 32, maxLease: 32, leaseMs: 30 });
    expect((leased.consume('k') as Decision).allowed).to.equal(true);
    const denied = leased.consume('k') as Decision;
    expect(denied.allowed).to.equal(false);
    for (let i = 0; i < 10; i++) expect((leased.consume('k') as Decision).retryAfterMs).to.be.within(59_000, 60_000);
    expect(calls.take).to.equal(2);
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect((leased.consume('k') as Decision).allowed).to.equal(false);
    expect(calls.take, 'asked again once leaseMs passed').to.equal(3);
    leased.close();
  });
});

describe('redis limit scripts', () => {
  let redis: TestRedis;
  let connection: RedisConnection;

  before(async () => {
    redis = await startRedis();
    connection = await RedisConnection.connect(
      { url: redis.url, tls: false, keyPrefix: 'test:', commandTimeout: 500, connectTimeout: 2000, required: false },
      pino({ level: 'silent' }),
    );
    await connection.whenReady(2000);
  });

  after(async () => {
    await connection?.close();
    await redis?.stop();
  });

  it('decides like the in-memory GCRA: the burst, then denials with the time to wait', async () => {
    const store = new RedisLimits(connection, [limit(5, 60_000)]);
    const decisions: Decision[] = [];
    for (let i = 0; i < 7; i++) decisions.push(await store.take('k1'));
    expect(decisions.map((d) => d.granted)).to.deep.equal([1, 1, 1, 1, 1, 0, 0]);
    expect(decisions.map((d) => d.remaining[0])).to.deep.equal([4, 3, 2, 1, 0, 0, 0]);
    // One request's worth of the window: 12 s, less the few ms the test took.
    expect(decisions[5]!.retryAfterMs).to.be.within(11_000, 12_000);
    expect(decisions[4]!.resetMs[0]).to.be.within(59_000, 60_000);
  });

  it('reserves and refunds like the in-memory GCRA', async () => {
    const store = new RedisLimits(connection, [limit(1000, 60_000)]);
    expect((await store.take('k5', 33)).granted).to.equal(33);
    store.refund('k5', 32);
    expect((await store.take('k5')).remaining[0]).to.equal(998);
    const near = new RedisLimits(connection, [limit(63, 60_000)]);
    expect((await near.take('k6', 33)).granted).to.equal(1);
  });

  it('decides the takes of one event-loop turn in one command, each as the in-memory GCRA would, in order', async () => {
    const limits = [limit(3, 60_000), limit(100, 3_600_000)];
    const store = new RedisLimits(connection, limits);
    await store.take('warm-up'); // loads the single-bucket script
    const calls = async (): Promise<number> => {
      const stats = await redis.cli('info', 'commandstats');
      return [...stats.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
    };
    const before = await calls();
    const buckets = ['b1', 'b2', 'b1', 'b3', 'b1', 'b1', 'b2'];
    const wants = [1, 1, 1, 1, 1, 1, 70];
    const decisions = await Promise.all(buckets.map((bucket, i) => store.take(bucket, wants[i])));
    // One EVALSHA, and one EVAL when Redis did not know the batched script yet.
    expect((await calls()) - before).to.be.within(1, 2);
    const memory = new MemoryLimitStore();
    const expected = buckets.map((bucket, i) => memory.take(bucket, limits, wants[i]));
    expect(decisions.map((d) => [d.granted, d.remaining])).to.deep.equal(expected.map((d) => [d.granted, d.remaining]));
    expect(decisions.map((d) => d.allowed)).to.deep.equal([true, true, true, true, true, false, true]);
    expect(decisions[5]!.retryAfterMs).to.be.within(19_000, 20_000);
    // The batched command keeps its state in the same (prefixed) keys as a single take.
    expect(Number(await redis.cli('pttl', 'test:rl:{b3}:3/60/3'))).to.be.within(19_000, 20_000);
    expect(Number(await redis.cli('exists', 'rl:{b3}:3/60/3'))).to.equal(0);
    const single = await store.take('b3');
    expect([single.granted, single.remaining]).to.deep.equal(((d) => [d.granted, d.remaining])(memory.take('b3', limits)));
  });

  it('sends at most 128 buckets per command, so that one script never holds Redis for long', async () => {
    const store = new RedisLimits(connection, [limit(1000, 60_000)]);
    await Promise.all([store.take('warm-1'), store.take('warm-2')]); // loads both scripts
    const stats = async (): Promise<number> => Number(/cmdstat_evalsha:calls=(\d+)/.exec(await redis.cli('info', 'commandstats'))![1]);
    const before = await stats();
    const decisions = await Promise.all(Array.from({ length: 300 }, (_, i) => store.take(`many-${i % 150}`)));
    expect((await stats()) - before).to.equal(3);
    // Each of the 150 buckets was taken twice, in order, whichever command carried it.
    expect(decisions.map((d) => d.remaining[0])).to.deep.equal(Array.from({ length: 300 }, (_, i) => (i < 150 ? 999 : 998)));
  });

  it('keeps state in one key per limit under the bucket as hash tag, expiring once the quota is whole again', async () => {
    await new RedisLimits(connection, [limit(5, 60_000), limit(10, 3_600_000)]).take('k2');
    expect(Number(await redis.cli('pttl', 'test:rl:{k2}:5/60/5'))).to.be.within(11_000, 12_000);
    expect(Number(await redis.cli('pttl', 'test:rl:{k2}:10/3600/10'))).to.be.within(359_000, 360_000);
  });

  it('loads the script again after Redis forgets it (NOSCRIPT)', async () => {
    const store = new RedisLimits(connection, [limit(5, 60_000)]);
    await store.take('k3');
    await redis.cli('script', 'flush');
    expect((await store.take('k3')).remaining[0]).to.equal(3);
  });

  it('fails fast with TG_ERR_REDIS_UNAVAILABLE when Redis is frozen, then stays away for a cooldown (and says so before being asked)', async () => {
    const store = new RedisLimits(connection, [limit(5, 60_000)]);
    expect(connection.refusesNow()).to.equal(false);
    redis.freeze();
    try {
      const error = await store.take('k4').catch((e: unknown) => e);
      expect(error).to.have.property('code', 'TG_ERR_REDIS_UNAVAILABLE');
      const again = await store.take('k4').catch((e: unknown) => e);
      expect(again).to.have.property('code', 'TG_ERR_REDIS_UNAVAILABLE');
      expect((again as { logDetail: string }).logDetail).to.equal('redis: recent commands failed');
      // What the rate limit asks first, so that an outage does not cost each request a failed command.
      expect(connection.refusesNow()).to.equal(true);
    } finally {
      redis.thaw();
    }
  });

  it('fails every take of a batched command with TG_ERR_REDIS_UNAVAILABLE when Redis does not answer it', async () => {
    const store = new RedisLimits(connection, [limit(5, 60_000)]);
    // The test before left the circuit open for its cooldown: wait until a command would be sent.
    while (connection.refusesNow()) await new Promise((resolve) => setTimeout(resolve, 50));
    redis.freeze();
    try {
      const outcomes = await Promise.all(['f1', 'f2', 'f1'].map((bucket) => store.take(bucket).catch((e: unknown) => e)));
      expect(outcomes.map((e) => (e as { code?: string }).code)).to.deep.equal(Array(3).fill('TG_ERR_REDIS_UNAVAILABLE'));
      expect((outcomes[0] as { logDetail: string }).logDetail).to.match(/timed out/i);
    } finally {
      redis.thaw();
    }
  });
});
