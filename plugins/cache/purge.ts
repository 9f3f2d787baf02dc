/** A purge the admin listener sends every worker: exactly one of the fields. */
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
