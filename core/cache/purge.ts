import cluster from 'node:cluster';
import { GatewayError } from '../errors.ts';

/** What to purge: every stored response for an absolute URL, below a path prefix, or with a tag. */
export type PurgeTarget = { url: string } | { prefix: string } | { tag: string };

/** What a purge dropped: entries over every worker of this host, and how many workers answered. */
export interface PurgeOutcome {
  purged: number;
  workers: number;
}

/** A purge the primary sends every worker: exactly one of the fields. */
export interface PurgeRequest {
  url?: string;
  prefix?: string;
  tag?: string;
  /** Set on the one worker that also purges the shared tier and tells other gateways. */
  publish?: boolean;
}

interface PurgeMessage extends PurgeRequest {
  type: 'tollgate:cache-purge';
  id: number;
}

type Handler = (purge: PurgeRequest) => number;

const handlers = new Set<Handler>();
let listening = false;

/**
 * Registers a cache's purge handler for the purges the primary broadcasts; every worker answers with
 * how many entries its caches dropped. Returns the function that unregisters it.
 */
export function onPurge(handler: Handler): () => void {
  handlers.add(handler);
  if (!listening && process.send) {
    listening = true;
    process.on('message', (message: PurgeMessage) => {
      if (message?.type !== 'tollgate:cache-purge') return;
      let count = 0;
      for (const each of handlers) count += each(message);
      if (process.connected) process.send!({ type: 'tollgate:cache-purged', id: message.id, count });
    });
  }
  return () => handlers.delete(handler);
}

/** Why a purge target is unusable, or null. Shared by the admin listener and `gw.cache.purge`. */
export function purgeProblem(target: unknown): string | null {
  const fields = typeof target === 'object' && target !== null ? Object.entries(target) : [];
  if (fields.length !== 1 || !['url', 'prefix', 'tag'].includes(fields[0]![0]) || typeof fields[0]![1] !== 'string' || fields[0]![1] === '') {
    return 'give exactly one of "url", "prefix" or "tag", as a non-empty string';
  }
  const [name, value] = fields[0] as [string, string];
  if (name === 'url' && !URL.canParse(value)) return `"url" must be an absolute URL, got ${JSON.stringify(value)}`;
  if (name === 'prefix' && !value.startsWith('/')) return '"prefix" is a path and starts with "/"';
  return null;
}

let nextRequest = 0;
const waiting = new Map<number, { resolve: (outcome: PurgeOutcome) => void; timer: NodeJS.Timeout }>();
let answersHeard = false;

/**
 * Purges every cache of this host, as `POST /cache/purge` on the admin listener does: in a cluster
 * worker the primary relays it to all workers (one of which also purges the shared Redis tier and
 * tells other gateways); in a gateway outside a cluster (a test gateway) its own caches purge.
 */
export function purgeCaches(target: PurgeTarget): Promise<PurgeOutcome> {
  const problem = purgeProblem(target);
  if (problem !== null) return Promise.reject(new TypeError(`gw.cache.purge: ${problem}`));
  if (!cluster.isWorker || !process.send) {
    let purged = 0;
    for (const each of handlers) purged += each({ ...target, publish: true });
    return Promise.resolve({ purged, workers: 1 });
  }
  if (!answersHeard) {
    answersHeard = true;
    process.on('message', (message: { type?: string; id?: number } & Partial<PurgeOutcome>) => {
      if (message?.type !== 'tollgate:cache-purge-result') return;
      const pending = waiting.get(message.id!);
      if (pending === undefined) return;
      waiting.delete(message.id!);
      clearTimeout(pending.timer);
      pending.resolve({ purged: message.purged ?? 0, workers: message.workers ?? 0 });
    });
  }
  const id = ++nextRequest;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      waiting.delete(id);
      reject(new GatewayError('TG_ERR_INTERNAL', undefined, { logDetail: 'cache purge: the primary did not answer within 5 s' }));
    }, 5_000);
    waiting.set(id, { resolve, timer });
    process.send!({ type: 'tollgate:cache-purge-request', id, ...target });
  });
}
