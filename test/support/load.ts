import { send } from './http.ts';

/** A bounded load on one URL: some clients, each sending one request at a time on a new connection. */
export interface Load {
  /** `status 200`, `status 502`, `ECONNREFUSED`... in the order they came. */
  readonly outcomes: string[];
  /** How many requests have been answered 200 so far. */
  ok(): number;
  /** Resolves once `count` requests in all have been answered 200. */
  untilOk(count: number): Promise<void>;
  /** Stops the clients and resolves when their last requests are done. */
  stop(): Promise<void>;
}

export function startLoad(url: string, options: { clients: number; maxRequests: number }): Load {
  const outcomes: string[] = [];
  let ok = 0;
  let stopped = false;
  const waiters: { count: number; resolve: () => void }[] = [];
  const client = async (): Promise<void> => {
    while (!stopped && outcomes.length < options.maxRequests) {
      const outcome = await send(url).then(
        (res) => `status ${res.status}`,
        (error: NodeJS.ErrnoException) => error.code ?? error.message,
      );
      outcomes.push(outcome);
      if (outcome === 'status 200') ok++;
      for (const waiter of waiters.filter((w) => ok >= w.count)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  };
  const clients = Array.from({ length: options.clients }, client);
  return {
    outcomes,
    ok: () => ok,
    untilOk: (count) => (ok >= count ? Promise.resolve() : new Promise((resolve) => waiters.push({ count, resolve }))),
    async stop() {
      stopped = true;
      await Promise.all(clients);
    },
  };
}
