import type { RedisConnection } from '../redis/redis-client.ts';
import { LEASE_DIVISOR, LEASE_MIN_ROOM, type CompiledLimit, type Decision } from './gcra.ts';

/**
 * gcra.ts's `take` in Lua: every limit of a decision is read, decided and (only if all allow) written
 * atomically. Time is Redis's own clock (TIME), so gateways on hosts whose clocks disagree still share
 * one timeline. TATs are whole microseconds.
 *
 * `take(k, n, want, r)` decides one bucket of `n` limits: their keys are KEYS[k + 1 .. k + n], their
 * emission intervals and tolerances (µs) ARGV[r], ARGV[r + 1], then the next limit's, and so on. It
 * appends granted (0 when denied), retry-after ms, then per limit remaining and reset ms to `out`.
 */
const TAKE_FUNCTION = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
local function take(k, n, want, r)
  local tats = {}
  local room = math.huge
  local retry = 0
  for i = 1, n do
    local emission = tonumber(ARGV[r + 2 * i - 2])
    local tolerance = tonumber(ARGV[r + 2 * i - 1])
    local tat = tonumber(redis.call('GET', KEYS[k + i]) or '0')
    if tat < now then tat = now end
    tats[i] = tat
    local fits = math.floor((tolerance - (tat - now)) / emission + 0.000001)
    if fits < room then room = fits end
    local over = tat - now + emission - tolerance
    if over > retry then retry = over end
  end
  local granted = 0
  if room >= 1 then
    granted = 1
    if room >= ${LEASE_MIN_ROOM} then granted = 1 + math.min(want - 1, math.floor(room / ${LEASE_DIVISOR})) end
    retry = 0
  end
  out[#out + 1] = granted
  out[#out + 1] = math.ceil(retry / 1000)
  for i = 1, n do
    local emission = tonumber(ARGV[r + 2 * i - 2])
    local tolerance = tonumber(ARGV[r + 2 * i - 1])
    local tat = tats[i] + emission * granted
    if granted > 0 then
      redis.call('SET', KEYS[k + i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
    end
    local remaining = math.floor((tolerance - (tat - now)) / emission + 0.000001)
    if remaining < 0 then remaining = 0 end
    out[#out + 1] = remaining
    out[#out + 1] = math.ceil((tat - now) / 1000)
  end
end
`;

/**
 * One bucket. KEYS: one per limit, all with the same hash tag (one Redis Cluster slot). ARGV: want,
 * then per limit its emission interval and tolerance in microseconds.
 */
export const TAKE_SCRIPT = `${TAKE_FUNCTION}
take(0, #KEYS, tonumber(ARGV[1]), 2)
return out
`;

/**
 * Several buckets in one command, decided in order (a bucket twice sees its first decision). KEYS:
 * each bucket's keys in turn, `n` per bucket. ARGV: `n`, the limits' rates as in TAKE_SCRIPT, then
 * each bucket's want. Returns the buckets' answers one after the other.
 */
export const TAKE_MANY_SCRIPT = `${TAKE_FUNCTION}
local n = tonumber(ARGV[1])
for b = 0, #KEYS / n - 1 do
  take(b * n, n, tonumber(ARGV[2 + 2 * n + b]), 2)
end
return out
`;

/** Gives back reserved requests nobody used. ARGV: tokens, then per limit its emission interval. */
export const REFUND_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tokens = tonumber(ARGV[1])
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') - tonumber(ARGV[i + 1]) * tokens
  if tat > now then
    redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
  else
    redis.call('DEL', KEYS[i])
  end
end
return 1
`;

/** The batched take's command name: its key count varies, so it is passed first. */
const TAKE_MANY = 'tollgateTakeMany';

type ScriptCommand = (...args: (string | number)[]) => Promise<number[]>;

// Buckets per batched command at most: a script holds Redis while it runs, and a busy turn can
// gather hundreds.
const MAX_BATCH = 128;

interface PendingTake {
  bucket: string;
  want: number;
  resolve: (decision: Decision) => void;
  reject: (error: unknown) => void;
}

/**
 * Limits shared by every worker of every gateway that uses the same Redis (standalone, Sentinel or
 * Cluster). ioredis sends the scripts by SHA and resends their source when Redis answers NOSCRIPT
 * (after a restart, or on a new cluster node); auto-pipelining puts the commands of one event-loop
 * turn in one write.
 *
 * Against one Redis (not a cluster), the takes of one event-loop turn go as one command: each
 * command costs a worker more in ioredis (its objects, its promise, its reply) than the script costs
 * Redis, and with many buckets each seen now and then (limits by client IP), every request is a take.
 * A cluster gets one command per bucket, since buckets hash to different slots.
 */
export class RedisLimits {
  readonly #redis: RedisConnection;
  readonly #suffixes: string[];
  readonly #rates: number[];
  readonly #emissions: number[];
  readonly #take: string;
  readonly #refund: string;
  /** Takes go in batches (not to a cluster, whose buckets hash to different slots). */
  readonly #batched: boolean;
  #batch: PendingTake[] = [];

  constructor(redis: RedisConnection, limits: readonly CompiledLimit[]) {
    this.#redis = redis;
    // Each limit has its own key, named by its shape so that a changed limit starts afresh.
    this.#suffixes = limits.map((limit) => `:${limit.limit}/${limit.windowMs / 1000}/${limit.burst}`);
    this.#rates = limits.flatMap((limit) => [limit.emissionUs, limit.toleranceUs]);
    this.#emissions = limits.map((limit) => limit.emissionUs);
    // A fixed key count per command, not a count passed first: ioredis's cluster auto-pipelining
    // groups commands by their first argument, which must therefore be a key. (The batched command
    // is never sent to a cluster.)
    this.#take = `tollgateTake${limits.length}`;
    this.#refund = `tollgateRefund${limits.length}`;
    if (!(this.#take in redis.client)) {
      redis.client.defineCommand(this.#take, { lua: TAKE_SCRIPT, numberOfKeys: limits.length });
      redis.client.defineCommand(this.#refund, { lua: REFUND_SCRIPT, numberOfKeys: limits.length });
    }
    this.#batched = !redis.client.isCluster;
    if (this.#batched && !(TAKE_MANY in redis.client)) redis.client.defineCommand(TAKE_MANY, { lua: TAKE_MANY_SCRIPT });
  }

  /**
   * Takes one request (and up to `want - 1` reserved ahead) from `bucket`. Rejects with
   * `TG_ERR_REDIS_UNAVAILABLE` when Redis cannot decide.
   */
  take(bucket: string, want = 1): Promise<Decision> {
    if (!this.#batched) return this.#takeOne(bucket, want);
    return new Promise((resolve, reject) => {
      // After the poll phase: the requests of every socket read in this turn are in the batch.
      if (this.#batch.length === 0) setImmediate(this.#flush);
      this.#batch.push({ bucket, want, resolve, reject });
    });
  }

  /** Gives back reserved requests that were not used; best effort (lost tokens only under-admit). */
  refund(bucket: string, tokens: number): void {
    const args = this.#keys(bucket);
    args.push(tokens, ...this.#emissions);
    this.#redis.run((client) => this.#call(client, this.#refund, args)).catch(() => {});
  }

  async #takeOne(bucket: string, want: number): Promise<Decision> {
    const args = this.#keys(bucket);
    args.push(want, ...this.#rates);
    return this.#decision(await this.#redis.run((client) => this.#call(client, this.#take, args)), 0);
  }

  readonly #flush = (): void => {
    const all = this.#batch;
    this.#batch = [];
    for (let from = 0; from < all.length; from += MAX_BATCH) this.#send(all.length <= MAX_BATCH ? all : all.slice(from, from + MAX_BATCH));
  };

  #send(batch: PendingTake[]): void {
    if (batch.length === 1) {
      const { bucket, want, resolve, reject } = batch[0]!;
      this.#takeOne(bucket, want).then(resolve, reject);
      return;
    }
    const count = this.#suffixes.length;
    const keys: (string | number)[] = [];
    for (const pending of batch) keys.push(...this.#keys(pending.bucket));
    const args: (string | number)[] = [keys.length, ...keys, count, ...this.#rates];
    for (const pending of batch) args.push(pending.want);
    this.#redis.run((client) => this.#call(client, TAKE_MANY, args)).then(
      (out) => {
        for (let i = 0; i < batch.length; i++) batch[i]!.resolve(this.#decision(out, i * (2 + 2 * count)));
      },
      (error: unknown) => {
        for (const pending of batch) pending.reject(error);
      },
    );
  }

  /** The decision at `at` in a script's answer: granted, retry-after ms, then per limit remaining and reset ms. */
  #decision(out: number[], at: number): Decision {
    const count = this.#suffixes.length;
    const remaining = new Array<number>(count);
    const resetMs = new Array<number>(count);
    for (let i = 0; i < count; i++) {
      remaining[i] = Number(out[at + 2 + 2 * i]);
      resetMs[i] = Number(out[at + 3 + 2 * i]);
    }
    const granted = Number(out[at]);
    return { allowed: granted > 0, granted, remaining, resetMs, retryAfterMs: Number(out[at + 1]) };
  }

  #keys(bucket: string): (string | number)[] {
    // The bucket is the hash tag: all of its limits live in one Redis Cluster slot.
    const tag = `rl:{${bucket}}`;
    return this.#suffixes.map((suffix) => tag + suffix);
  }

  #call(client: RedisConnection['client'], name: string, args: (string | number)[]): Promise<number[]> {
    return (client as unknown as Record<string, ScriptCommand>)[name]!.apply(client, args);
  }
}
