import type { RedisConnection } from '../redis/redis-client.ts';
import type { Decision, LimitRate } from './gcra.ts';

/**
 * GCRA in one atomic Lua script: every limit of a decision is read, decided and (only if all allow)
 * written in one round trip. Time is Redis's own clock (TIME), so gateways on hosts whose clocks
 * disagree still share one timeline. TATs are whole microseconds.
 *
 * KEYS: one per limit, all with the same hash tag (one Redis Cluster slot).
 * ARGV: cost, then per limit its emission interval and tolerance in microseconds.
 * Returns: allowed (0|1), retry-after ms, then per limit remaining and reset ms.
 */
export const GCRA_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local n = #KEYS
local tats = {}
local allowed = 1
local retry = 0
for i = 1, n do
  local emission = tonumber(ARGV[2 * i])
  local tolerance = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  tats[i] = tat
  local over = tat + emission * cost - now - tolerance
  if over > 0 then
    allowed = 0
    if over > retry then retry = over end
  end
end
local out = { allowed, math.ceil(retry / 1000) }
for i = 1, n do
  local emission = tonumber(ARGV[2 * i])
  local tolerance = tonumber(ARGV[2 * i + 1])
  local tat = tats[i]
  if allowed == 1 then
    tat = tat + emission * cost
    redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
  end
  local ahead = tat - now
  local remaining = math.floor((tolerance - ahead) / emission + 0.000001)
  if remaining < 0 then remaining = 0 end
  out[#out + 1] = remaining
  out[#out + 1] = math.ceil(ahead / 1000)
end
return out
`;

type GcraCommand = (...args: (string | number)[]) => Promise<number[]>;

/**
 * Limits shared by every worker of every gateway that uses the same Redis (standalone, Sentinel or
 * Cluster). ioredis sends the script by SHA and resends its source when Redis answers NOSCRIPT (after
 * a restart, or on a new cluster node); auto-pipelining puts the decisions of one event-loop turn in
 * one write.
 */
export class RedisLimits {
  readonly #redis: RedisConnection;

  readonly #command: string;

  /** `limitCount`: how many limits (so keys) every decision of this store has. */
  constructor(redis: RedisConnection, limitCount: number) {
    this.#redis = redis;
    // A fixed key count per command, not a count passed first: ioredis's cluster auto-pipelining
    // groups commands by their first argument, which must therefore be a key.
    this.#command = `tollgateGcra${limitCount}`;
    if (!(this.#command in redis.client)) redis.client.defineCommand(this.#command, { lua: GCRA_SCRIPT, numberOfKeys: limitCount });
  }

  /**
   * `keys` are index-aligned with `limits` and must share a hash tag. Rejects with
   * `TG_ERR_REDIS_UNAVAILABLE` when Redis cannot decide.
   */
  async consume(keys: readonly string[], limits: readonly LimitRate[], cost = 1): Promise<Decision> {
    const args: (string | number)[] = [...keys, cost];
    for (const limit of limits) args.push(limit.emissionUs, limit.toleranceUs);
    const out = await this.#redis.run((client) => ((client as unknown as Record<string, GcraCommand>)[this.#command]!)(...args));
    const remaining = new Array<number>(limits.length);
    const resetMs = new Array<number>(limits.length);
    for (let i = 0; i < limits.length; i++) {
      remaining[i] = Number(out[2 + 2 * i]);
      resetMs[i] = Number(out[3 + 2 * i]);
    }
    return { allowed: Number(out[0]) === 1, remaining, resetMs, retryAfterMs: Number(out[1]) };
  }
}
