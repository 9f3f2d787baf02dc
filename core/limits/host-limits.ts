import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { Decision, LimitRate } from './gcra.ts';
import { MemoryLimitStore } from './memory-store.ts';

/**
 * Limits exact across every cluster worker of one host, without Redis: the primary holds the GCRA
 * state and the workers ask it over the cluster IPC channel. A per-worker counter would let each
 * worker grant the whole limit, multiplying it by the number of workers; one owner cannot.
 *
 * Asks made in the same turn of a worker's event loop travel as one message, and so do the answers;
 * while a message waits for its answer, new asks gather and go out together once it comes. Each
 * message wakes the primary, and with many buckets each seen now and then every request asks: one
 * message per turn cost a worker 79.7 µs per request against 72.1 with one in flight at a time
 * (docs/benchmarks.md).
 */

/** A worker's asks: per ask `[id, key, want, emissionUs, toleranceUs, ...]`. */
interface AskMessage {
  type: 'tollgate:limits';
  asks: (string | number)[][];
}
/** The primary's answers: per ask `[id, granted, retryAfterMs, remaining, resetMs, ...]`. */
interface AnswerMessage {
  type: 'tollgate:limits-answer';
  answers: number[][];
}
/** Reserved requests a worker did not use: per refund `[key, tokens, emissionUs, toleranceUs, ...]`. */
interface RefundMessage {
  type: 'tollgate:limits-refund';
  refunds: (string | number)[][];
}

/** In the primary: answers every worker's asks from one store. */
export function serveHostLimits(store = new MemoryLimitStore()): MemoryLimitStore {
  cluster.on('fork', (worker: Worker) => {
    worker.on('message', (message: AskMessage | RefundMessage) => {
      if (message?.type === 'tollgate:limits-refund' && Array.isArray(message.refunds)) {
        for (const entry of message.refunds) store.refund(entry[0] as string, ratesIn(entry), entry[1] as number);
        return;
      }
      if (message?.type !== 'tollgate:limits' || !Array.isArray(message.asks)) return;
      const answers = message.asks.map(answer.bind(null, store));
      if (worker.isConnected()) worker.send({ type: 'tollgate:limits-answer', answers } satisfies AnswerMessage);
    });
  });
  return store;
}

function ratesIn(entry: (string | number)[], from = 2): LimitRate[] {
  const limits: LimitRate[] = [];
  for (let i = from; i + 1 < entry.length; i += 2) limits.push({ emissionUs: entry[i] as number, toleranceUs: entry[i + 1] as number });
  return limits;
}

function answer(store: MemoryLimitStore, ask: (string | number)[]): number[] {
  const [id, key, want] = ask as [number, string, number];
  const limits = ratesIn(ask, 3);
  const decision = store.take(key, limits, want);
  const out = [id, decision.granted, decision.retryAfterMs];
  for (let i = 0; i < limits.length; i++) out.push(decision.remaining[i]!, decision.resetMs[i]!);
  return out;
}

interface Pending {
  resolve: (decision: Decision) => void;
  key: string;
  limits: readonly LimitRate[];
  want: number;
}

let shared: HostLimits | null = null;

/** This process's one client of the host-wide store (one, so that answers cannot go astray). */
export function hostLimits(logger: Logger): HostLimits {
  return (shared ??= new HostLimits(logger));
}

/**
 * In a worker: the client of the primary's store. Outside a cluster (a gateway embedded in a test,
 * say) or once the primary is gone, it decides from a store of its own, which is exact for this
 * process alone.
 */
export class HostLimits {
  readonly #local = new MemoryLimitStore();
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #batch: (string | number)[][] = [];
  #flushScheduled = false;
  /** Ask messages sent and not answered yet. */
  #inFlight = 0;
  readonly #logger: Logger;
  #warnedLocal = false;

  constructor(logger: Logger) {
    this.#logger = logger;
    if (this.#viaPrimary()) {
      process.on('message', this.#onMessage);
      // Asks the primary will never answer now: decide them here rather than hang the requests.
      process.once('disconnect', () => {
        for (const pending of this.#pending.values()) pending.resolve(this.#decideLocally(pending.key, pending.limits, pending.want));
        this.#pending.clear();
        this.#batch = [];
        this.#inFlight = 0;
      });
    }
  }

  /** Synchronous (a `Decision`) when decided in this process, a promise when the primary decides. */
  take(key: string, limits: readonly LimitRate[], want = 1): Decision | Promise<Decision> {
    if (!this.#viaPrimary()) return this.#decideLocally(key, limits, want);
    const id = this.#nextId++;
    const ask: (string | number)[] = [id, key, want];
    for (const limit of limits) ask.push(limit.emissionUs, limit.toleranceUs);
    this.#batch.push(ask);
    if (!this.#flushScheduled && this.#inFlight === 0) {
      this.#flushScheduled = true;
      setImmediate(this.#flush);
    }
    return new Promise((resolve) => this.#pending.set(id, { resolve, key, limits, want }));
  }

  /** Gives back reserved requests that were not used. */
  refund(key: string, limits: readonly LimitRate[], tokens: number): void {
    if (!this.#viaPrimary()) {
      this.#local.refund(key, limits, tokens);
      return;
    }
    const entry: (string | number)[] = [key, tokens];
    for (const limit of limits) entry.push(limit.emissionUs, limit.toleranceUs);
    process.send!({ type: 'tollgate:limits-refund', refunds: [entry] } satisfies RefundMessage);
  }

  #viaPrimary(): boolean {
    return cluster.isWorker && process.connected;
  }

  #decideLocally(key: string, limits: readonly LimitRate[], want: number): Decision {
    if (cluster.isWorker && !this.#warnedLocal) {
      this.#warnedLocal = true;
      this.#logger.warn('the primary is gone; host-wide limits are now kept by this worker alone');
    }
    return this.#local.take(key, limits, want);
  }

  readonly #flush = (): void => {
    this.#flushScheduled = false;
    const asks = this.#batch;
    if (asks.length === 0) return;
    this.#batch = [];
    if (!process.connected) {
      for (const [id] of asks) this.#settleLocally(id as number);
      return;
    }
    this.#inFlight++;
    process.send!({ type: 'tollgate:limits', asks } satisfies AskMessage, undefined, {}, (error) => {
      if (!error) return;
      this.#answered();
      for (const [id] of asks) this.#settleLocally(id as number);
    });
  };

  #settleLocally(id: number): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    pending.resolve(this.#decideLocally(pending.key, pending.limits, pending.want));
  }

  /** One ask message is settled: asks gathered meanwhile go out together. */
  #answered(): void {
    this.#inFlight = Math.max(0, this.#inFlight - 1);
    if (this.#inFlight === 0 && this.#batch.length > 0 && !this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(this.#flush);
    }
  }

  readonly #onMessage = (message: AnswerMessage): void => {
    if (message?.type !== 'tollgate:limits-answer') return;
    this.#answered();
    for (const out of message.answers) {
      const pending = this.#pending.get(out[0]!);
      if (!pending) continue;
      this.#pending.delete(out[0]!);
      const count = pending.limits.length;
      const remaining = new Array<number>(count);
      const resetMs = new Array<number>(count);
      for (let i = 0; i < count; i++) {
        remaining[i] = out[3 + 2 * i]!;
        resetMs[i] = out[4 + 2 * i]!;
      }
      pending.resolve({ allowed: out[1]! > 0, granted: out[1]!, remaining, resetMs, retryAfterMs: out[2]! });
    }
  };
}
