import { hash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { RedisConnection } from '../../core/index.ts';
import type { CacheEntry } from './cache-store.ts';
import type { PurgeRequest } from '../../core/cache/purge.ts';


/**
 * The cache's shared tier in Redis: what one worker stores, every worker of every gateway on that
 * Redis can serve. An entry is one string (a 4-byte length, JSON metadata, the body), under a key
 * hash-tagged by its URL's primary key, next to the URL's Vary names and its set of variants; tags
 * are sets of entry keys. Purges travel over pub/sub so every instance drops its memory copies.
 *
 * Every call fails soft: with Redis down the cache is memory-only, never an error.
 */
export class RedisCacheTier {
  readonly #redis: RedisConnection;
  readonly #logger: Logger;
  readonly #prefix: string;
  #subscriber: Redis | Cluster | null = null;

  constructor(redis: RedisConnection, logger: Logger, keyPrefix: string) {
    this.#redis = redis;
    this.#logger = logger;
    this.#prefix = keyPrefix;
  }

  /** The stored variant for a request, or null (a miss, or Redis unavailable). */
  async get(primary: string, keyFor: (vary: readonly string[]) => string): Promise<{ entry: CacheEntry; vary: string[] } | null> {
    // While Redis is known to be down a lookup is a miss at once, not a failed command per request.
    if (this.#redis.refusesNow()) return null;
    try {
      const tag = hashTag(primary);
      const varyText = await this.#redis.run((client) => client.get(`cache:${tag}:vary`));
      if (varyText === null) return null;
      const vary = JSON.parse(varyText) as string[];
      const key = keyFor(vary);
      const raw = await this.#redis.run((client) => client.getBuffer(`cache:${tag}:e:${digest(key)}`));
      if (raw === null) return null;
      const metaLength = raw.readUInt32BE(0);
      const meta = JSON.parse(raw.subarray(4, 4 + metaLength).toString('utf8')) as Omit<CacheEntry, 'body'>;
      return { entry: { ...meta, body: raw.subarray(4 + metaLength) }, vary };
    } catch {
      return null;
    }
  }

  /** Stores an entry for `ttlMs` (its freshness and the stale windows it may still serve in). */
  set(entry: CacheEntry, vary: readonly string[], ttlMs: number): void {
    if (ttlMs <= 0 || this.#redis.refusesNow()) return;
    const { body, ...meta } = entry;
    const json = Buffer.from(JSON.stringify(meta));
    const length = Buffer.alloc(4);
    length.writeUInt32BE(json.byteLength);
    const tag = hashTag(entry.primary);
    const entryKey = `cache:${tag}:e:${digest(entry.key)}`;
    const ttl = Math.ceil(ttlMs);
    this.#redis
      .run((client) =>
        client
          .multi()
          .set(`cache:${tag}:vary`, JSON.stringify(vary), 'PX', ttl)
          .set(entryKey, Buffer.concat([length, json, body]), 'PX', ttl)
          .sadd(`cache:${tag}:variants`, entryKey)
          .pexpire(`cache:${tag}:variants`, ttl)
          .exec(),
      )
      // A tag's set lives as long as its longest-lived entry (NX sets a first expiry, GT only ever
      // extends it), so tags of entries long gone do not pile up in Redis. Each tag is its own slot.
      .then(() =>
        Promise.all(
          entry.tags.map((name) =>
            this.#redis.run((client) =>
              client.multi().sadd(`cache:tag:${name}`, entryKey).pexpire(`cache:tag:${name}`, ttl, 'NX').pexpire(`cache:tag:${name}`, ttl, 'GT').exec(),
            ),
          ),
        ),
      )
      .catch(() => {});
  }

  /** Drops matching entries from Redis and tells every gateway to drop its memory copies. */
  async purge(purge: PurgeRequest, primaryOf: (url: string) => string): Promise<void> {
    try {
      if (purge.url !== undefined) await this.#deletePrimary(primaryOf(purge.url));
      else if (purge.tag !== undefined) {
        const members = await this.#redis.run((client) => client.smembers(`cache:tag:${purge.tag}`));
        for (const member of members) await this.#redis.run((client) => client.del(member));
        await this.#redis.run((client) => client.del(`cache:tag:${purge.tag}`));
      } else await this.#deleteByScan(purge.prefix!);
      await this.#redis.run((client) => client.publish(this.#channel, JSON.stringify(purge)));
    } catch (error) {
      this.#logger.warn({ err: error }, 'cache purge could not reach redis; other gateways keep their copies until they expire');
    }
  }

  /** Calls `onPurge` for purges published by any gateway (this one included). */
  subscribe(onPurge: (purge: PurgeRequest) => void): void {
    // A connection in subscriber mode can do nothing else: it needs its own.
    const subscriber = (this.#redis.client as Redis).duplicate() as Redis | Cluster;
    this.#subscriber = subscriber;
    subscriber.on('error', () => {}); // the main connection logs Redis's state
    subscriber.on('message', (_channel: string, message: string) => {
      try {
        onPurge(JSON.parse(message) as PurgeRequest);
      } catch {
        // not ours
      }
    });
    // Subscribed on every (re)connection: the offline queue is off, so a command before it would fail.
    subscriber.on('ready', () => void subscriber.subscribe(this.#channel).catch(() => {}));
  }

  close(): void {
    this.#subscriber?.disconnect();
  }

  /** Channels are not prefixed by ioredis: the key prefix keeps tenants' purges apart. */
  get #channel(): string {
    return `${this.#prefix}cache:purge`;
  }

  async #deletePrimary(primary: string): Promise<void> {
    const tag = hashTag(primary);
    const variants = await this.#redis.run((client) => client.smembers(`cache:${tag}:variants`));
    await this.#redis.run((client) => client.del(`cache:${tag}:vary`, `cache:${tag}:variants`, ...variants));
  }

  /** Purge by path prefix: walks the Vary keys (on every master of a cluster) and deletes the URLs under it. */
  async #deleteByScan(prefix: string): Promise<void> {
    const client = this.#redis.client;
    const nodes = client.isCluster ? (client as Cluster).nodes('master') : [client as Redis];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', `${this.#prefix}cache:{*}:vary`, 'COUNT', 500);
        cursor = next;
        for (const key of keys) {
          const primary = unHashTag(key.slice(this.#prefix.length));
          const path = pathOf(primary);
          if (path !== null && path.startsWith(prefix)) await this.#deletePrimary(primary);
        }
      } while (cursor !== '0');
    }
  }
}

/** The primary key as a hash tag: braces escaped so the tag ends where it should. */
function hashTag(primary: string): string {
  return `{${primary.replace(/[{}%]/g, (c) => `%${c.charCodeAt(0).toString(16)}`)}}`;
}

function unHashTag(key: string): string {
  const inner = key.slice('cache:{'.length, key.lastIndexOf('}:vary'));
  return inner.replace(/%(7b|7d|25)/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** The path of `GET scheme://host/path?query|...`. */
function pathOf(primary: string): string | null {
  const match = /^\S+ [a-z]+:\/\/[^/]*(\/[^?|]*)/.exec(primary);
  return match ? match[1]! : null;
}

/** Variant keys hold request header values: keep them out of Redis key names (and collision-proof). */
function digest(key: string): string {
  return hash('sha256', key, 'base64url');
}
