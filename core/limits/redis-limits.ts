import type { RedisConnection } from '../redis/redis-client.ts';
import { LEASE_DIVISOR, LEASE_MIN_ROOM, type CompiledLimit, type Decision } from './gcra.ts';

/**
 * gcra.ts's `take` as one atomic Lua script: every limit of a decision is read, decided and (only if
 * all allow) written in one round trip. Time is Redis's own clock (TIME), so gateways on hosts whose
 * clocks disagree still share one timeline. TATs are whole microseconds.
 *
 * KEYS: one per limit, all with the same hash tag (one Redis Cluster slot).
 * ARGV: want, then per limit its emission interval and tolerance in microseconds.
 * Returns: granted (0 when denied), retry-after ms, then per limit remaining and reset ms.
 */
export const TAKE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local want = tonumber(ARGV[1])
local n = #KEYS
local tats = {}
local room = math.huge
local retry = 0
for i = 1, n do
  local emission = tonumber(ARGV[2 * i])
  local tolerance = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
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
local out = { granted, math.ceil(retry / 1000) }
for i = 1, n do
  local emission = tonumber(ARGV[2 * i])
  local tolerance = tonumber(ARGV[2 * i + 1])
  local tat = tats[i] + emission * granted
  if granted > 0 then
    redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
  end
  local remaining = math.floor((tolerance - (tat - now)) / emission + 0.000001)
  if remaining < 0 then remaining = 0 end
  out[#out + 1] = remaining
  out[#out + 1] = math.ceil((tat - now) / 1000)
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

type ScriptCommand = (...args: (string | number)[]) => Promise<number[]>;

/**
 * Limits shared by every worker of every gateway that uses the same Redis (standalone, Sentinel or
 * Cluster). ioredis sends the scripts by SHA and resends their source when Redis answers NOSCRIPT
 * (after a restart, or on a new cluster node); auto-pipelining puts the commands of one event-loop
 * turn in one write.
 */
export class RedisLimits {
  readonly #redis: RedisConnection;
  readonly #suffixes: string[];
  readonly #rates: number[];
  readonly #emissions: number[];
  readonly #take: string;
  readonly #refund: string;

  constructor(redis: RedisConnection, limits: readonly CompiledLimit[]) {
    this.#redis = redis;
    // Each limit has its own key, named by its shape so that a changed limit starts afresh.
    this.#suffixes = limits.map((limit) => `:${limit.limit}/${limit.windowMs / 1000}/${limit.burst}`);
    this.#rates = limits.flatMap((limit) => [limit.emissionUs, limit.toleranceUs]);
    this.#emissions = limits.map((limit) => limit.emissionUs);
    // A fixed key count per command, not a count passed first: ioredis's cluster auto-pipelining
    // groups commands by their first argument, which must therefore be a key.
    this.#take = `tollgateTake${limits.length}`;
    this.#refund = `tollgateRefund${limits.length}`;
    if (!(this.#take in redis.client)) {
      redis.client.defineCommand(this.#take, { lua: TAKE_SCRIPT, numberOfKeys: limits.length });
      redis.client.defineCommand(this.#refund, { lua: REFUND_SCRIPT, numberOfKeys: limits.length });
    }
  }

  /**
   * Takes one request (and up to `want - 1` reserved ahead) from `bucket`. Rejects with
   * `TG_ERR_REDIS_UNAVAILABLE` when Redis cannot decide.
   */
  async take(bucket: string, want = 1): Promise<Decision> {
    const args = this.#keys(bucket);
    args.push(want, ...this.#rates);
    const out = await this.#redis.run((client) => this.#call(client, this.#take, args));
    const count = this.#suffixes.length;
    const remaining = new Array<number>(count);
    const resetMs = new Array<number>(count);
    for (let i = 0; i < count; i++) {
      remaining[i] = Number(out[2 + 2 * i]);
      resetMs[i] = Number(out[3 + 2 * i]);
    }
    const granted = Number(out[0]);
    return { allowed: granted > 0, granted, remaining, resetMs, retryAfterMs: Number(out[1]) };
  }

  /** Gives back reserved requests that were not used; best effort (lost tokens only under-admit). */
  refund(bucket: string, tokens: number): void {
    const args = this.#keys(bucket);
    args.push(tokens, ...this.#emissions);
    this.#redis.run((client) => this.#call(client, this.#refund, args)).catch(() => {});
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
