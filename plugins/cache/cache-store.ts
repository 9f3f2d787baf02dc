import { LRUCache } from 'lru-cache';
import { gauge } from '../../core/telemetry/metrics.ts';
import type { HeaderRecord } from '../../core/http/header-map.ts';

export interface CacheEntry {
  /** The variant's key: the request's primary key plus the values of the headers `Vary` names. */
  readonly key: string;
  readonly primary: string;
  /** The request path, for purge by prefix. */
  readonly path: string;
  status: number;
  headers: HeaderRecord;
  readonly body: Buffer;
  /** Date.now() when the response (or its last revalidation) arrived. */
  receivedAt: number;
  initialAgeMs: number;
  freshnessMs: number;
  staleIfErrorMs: number;
  staleWhileRevalidateMs: number;
  mustRevalidate: boolean;
  readonly tags: readonly string[];
}

/** Per-entry bookkeeping (entry object, header record, key strings, map and LRU slots) on top of the body and header bytes: measured ~870 B per entry by `npm run bench:cache-memory`. */
const ENTRY_OVERHEAD_BYTES = 700;

/**
 * A worker's cache, bounded by bytes (body, headers and a fixed overhead per entry), least recently
 * used first out. Variants of one URL are found through the header names its responses vary on;
 * tags (surrogate keys) index entries for purge.
 */
/** Every store of this process, for the gauges; a store dropped with its gateway drops out. */
const stores = new Set<WeakRef<CacheStore>>();

function total(read: (store: CacheStore) => number): number {
  let sum = 0;
  for (const ref of stores) {
    const store = ref.deref();
    if (store === undefined) stores.delete(ref);
    else sum += read(store);
  }
  return sum;
}

gauge('tollgate_cache_size_bytes', 'Bytes the response caches hold (bodies, headers and per-entry overhead), bounded by each cache\'s maxSize.', function () {
  this.set(total((store) => store.bytes));
});
gauge('tollgate_cache_entries', 'Responses the response caches hold.', function () {
  this.set(total((store) => store.size));
});

export class CacheStore {
  readonly #entries: LRUCache<string, CacheEntry>;
  /** Primary key → the header names its responses vary on (lower case, sorted). */
  readonly #vary = new Map<string, readonly string[]>();
  readonly #byPrimary = new Map<string, Set<string>>();
  readonly #byTag = new Map<string, Set<string>>();

  constructor(maxBytes: number) {
    stores.add(new WeakRef(this));
    this.#entries = new LRUCache<string, CacheEntry>({
      maxSize: maxBytes,
      sizeCalculation: (entry) => entrySize(entry),
      dispose: (entry) => this.#unindex(entry),
    });
  }

  /** The variant a request would use, or why there is none. */
  lookup(primary: string, requestHeaders: Record<string, string | string[] | undefined>): CacheEntry | 'uri-miss' | 'vary-miss' {
    const vary = this.#vary.get(primary);
    if (vary === undefined) return 'uri-miss';
    return this.#entries.get(variantKey(primary, vary, requestHeaders)) ?? 'vary-miss';
  }

  keyFor(primary: string, vary: readonly string[], requestHeaders: Record<string, string | string[] | undefined>): string {
    return variantKey(primary, vary, requestHeaders);
  }

  /** Stores an entry; `vary` are the header names of its Vary field. */
  set(entry: CacheEntry, vary: readonly string[]): void {
    const known = this.#vary.get(entry.primary);
    // A URL whose responses now vary on other headers: its old variants can no longer be found.
    if (known !== undefined && known.join() !== vary.join()) this.purgePrimary(entry.primary);
    // Replacing an entry disposes of the old one, which unindexes it: index the new one afterwards.
    this.#entries.set(entry.key, entry);
    if (!this.#entries.has(entry.key)) return; // larger than the whole cache
    this.#vary.set(entry.primary, vary);
    let variants = this.#byPrimary.get(entry.primary);
    if (variants === undefined) this.#byPrimary.set(entry.primary, (variants = new Set()));
    variants.add(entry.key);
    for (const tag of entry.tags) {
      let keys = this.#byTag.get(tag);
      if (keys === undefined) this.#byTag.set(tag, (keys = new Set()));
      keys.add(entry.key);
    }
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  /** Removes every variant of a URL; returns how many. */
  purgePrimary(primary: string): number {
    const keys = [...(this.#byPrimary.get(primary) ?? [])];
    for (const key of keys) this.#entries.delete(key);
    this.#vary.delete(primary);
    return keys.length;
  }

  /** Removes every entry of a URL (`GET scheme://host/path?query`), whatever else its key holds. */
  purgeUrl(url: string): number {
    let count = 0;
    for (const primary of [...this.#byPrimary.keys()]) {
      if (primary === url || primary.startsWith(`${url}|`)) count += this.purgePrimary(primary);
    }
    return count;
  }

  purgePrefix(prefix: string): number {
    let count = 0;
    for (const entry of [...this.#entries.values()]) {
      if (entry.path.startsWith(prefix)) {
        this.#entries.delete(entry.key);
        count++;
      }
    }
    return count;
  }

  purgeTag(tag: string): number {
    const keys = [...(this.#byTag.get(tag) ?? [])];
    for (const key of keys) this.#entries.delete(key);
    return keys.length;
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#entries.calculatedSize;
  }

  #unindex(entry: CacheEntry): void {
    const variants = this.#byPrimary.get(entry.primary);
    variants?.delete(entry.key);
    if (variants?.size === 0) {
      this.#byPrimary.delete(entry.primary);
      this.#vary.delete(entry.primary);
    }
    for (const tag of entry.tags) {
      const keys = this.#byTag.get(tag);
      keys?.delete(entry.key);
      if (keys?.size === 0) this.#byTag.delete(tag);
    }
  }
}

function variantKey(primary: string, vary: readonly string[], headers: Record<string, string | string[] | undefined>): string {
  if (vary.length === 0) return primary;
  let key = primary;
  for (const name of vary) {
    const value = headers[name];
    key += `\n${name}:${(Array.isArray(value) ? value.join(',') : (value ?? '')).trim()}`;
  }
  return key;
}

function entrySize(entry: CacheEntry): number {
  let size = entry.body.byteLength + entry.key.length + ENTRY_OVERHEAD_BYTES;
  for (const name in entry.headers) {
    const value = entry.headers[name];
    size += name.length + (Array.isArray(value) ? value.join('').length : (value?.length ?? 0));
  }
  return size;
}
