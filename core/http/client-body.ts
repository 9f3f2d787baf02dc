import type { IncomingMessage } from 'node:http';
import { GatewayError } from '../errors.ts';
import { noteBodyBytes } from './body-scavenges.ts';

/**
 * The client's request body as undici reads it when it streams upstream: an async iterable with
 * backpressure (the client's stream is paused while undici has not asked for more) that the
 * gateway can let go of.
 *
 * Handed the client's stream itself, undici destroys it when the upstream answers before the whole
 * body was sent, which kills the client's connection under that very answer; and a stream left
 * paused with unread bytes stalls until a timeout resets it. `abandon()` ends undici's side and
 * reads the rest into nothing (as nginx's lingering close does), so the client gets its response
 * and its connection stays healthy.
 */
export class ClientBody implements AsyncIterableIterator<Buffer> {
  readonly #req: IncomingMessage;
  readonly #limit: number;
  #received = 0;
  #chunks: Buffer[] = [];
  #done = false;
  #error: Error | null = null;
  #waiting: { resolve: (result: IteratorResult<Buffer>) => void; reject: (error: Error) => void } | null = null;

  /** Past `limit` bytes the body fails with 413 TG_ERR_PAYLOAD_TOO_LARGE, which cuts the upstream request. */
  constructor(req: IncomingMessage, limit = Infinity) {
    this.#req = req;
    this.#limit = limit;
    req.on('data', this.#onData);
    req.once('end', this.#onEnd);
    req.once('error', this.#onError);
    req.once('close', this.#onClose);
    req.pause();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<Buffer>> {
    const chunk = this.#chunks.shift();
    if (chunk !== undefined) return Promise.resolve({ value: chunk, done: false });
    if (this.#error !== null) return Promise.reject(this.#error);
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    this.#req.resume();
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
    });
  }

  /** undici stopped reading (the upstream failed or answered): the rest is no longer wanted. */
  return(): Promise<IteratorResult<Buffer>> {
    this.abandon();
    return Promise.resolve({ value: undefined, done: true });
  }

  /** Stops feeding undici and drains what the client still sends. Safe to call more than once. */
  abandon(): void {
    if (this.#done && this.#chunks.length === 0) return;
    this.#finish();
    this.#chunks = [];
    if (!this.#req.complete && !this.#req.destroyed) this.#req.resume();
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#received += chunk.length;
    noteBodyBytes(chunk.length);
    if (this.#received > this.#limit) {
      this.#req.pause();
      this.#chunks = [];
      this.#onError(new GatewayError('TG_ERR_PAYLOAD_TOO_LARGE', undefined, { details: { limit: this.#limit } }));
      return;
    }
    if (this.#waiting !== null) {
      const { resolve } = this.#waiting;
      this.#waiting = null;
      resolve({ value: chunk, done: false });
    } else {
      this.#chunks.push(chunk);
    }
    this.#req.pause();
  };

  readonly #onEnd = (): void => {
    this.#finish();
  };

  readonly #onError = (error: Error): void => {
    this.#error = error;
    this.#finish();
  };

  // A client that closes mid-body: undici must fail the upstream request, not wait forever.
  readonly #onClose = (): void => {
    if (!this.#req.complete) this.#onError(new Error('the client closed the connection before sending the whole body'));
  };

  #finish(): void {
    this.#done = true;
    this.#req.off('data', this.#onData);
    const waiting = this.#waiting;
    this.#waiting = null;
    if (waiting === null) return;
    if (this.#error !== null) waiting.reject(this.#error);
    else waiting.resolve({ value: undefined, done: true });
  }
}
