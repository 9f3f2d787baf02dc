import { Readable, type Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { noteBodyBytes } from '../http/body-scavenges.ts';
import type { HeaderRecord } from '../http/header-map.ts';
import type { UpstreamTarget } from './upstream.ts';

/**
 * Who hears how an exchange goes. Methods on one object, not callbacks, so that an attempt costs no
 * closures: the object that started the exchange (forward.ts) is its owner.
 */
export interface ExchangeOwner {
  /** The final head arrived (1xx answers are skipped). The body follows through the exchange. */
  exchangeHead(exchange: UpstreamExchange, status: number, headers: HeaderRecord): void;
  /** The exchange failed, or was stopped, before its head arrived. */
  exchangeFailed(exchange: UpstreamExchange, error: Error): void;
  /**
   * Nothing of the exchange is in flight any more: its body ended or failed, or it was stopped.
   * Called once, and before `exchangeFailed` when both apply.
   */
  exchangeFinished(exchange: UpstreamExchange): void;
}

/** Where an upstream body goes: written straight to the client, or handed to a plugin as a stream. */
export interface UpstreamBodySource {
  /** Writes the body into `sink` as it arrives (with backpressure); `onError` hears of a mid-stream failure. */
  pipeTo(sink: Writable, onError: (error: Error) => void): void;
  /** The body as a Readable, for a plugin that wants to read or wrap it. */
  toReadable(): Readable;
  /** Nobody will read the body: stop receiving it. */
  discard(): void;
}

// Where body chunks go (numbers, not an enum: Node strips types but cannot strip enums).
const HELD = 0; // head received; chunks are held until someone claims them (see HOLD_WITHOUT_PAUSE)
const DIRECT = 1;
const STREAMING = 2;
const DONE = 3;

/**
 * Bytes of body an exchange holds, before anyone claims them, without stopping the upstream's parser.
 * A small body then arrives with its head in one parse (pausing at the head made undici unshift the
 * body into the socket and parse it again on resume); a large one still waits, paused, at this size.
 * An unclaimed exchange thus holds at most this much plus one socket read (one socket read before).
 */
export const HOLD_WITHOUT_PAUSE = 64 * 1024;

// Shared, not made per request: they only tell undici (and ourselves) why an exchange was stopped.
const CLIENT_GONE = Object.assign(new Error('the client closed the connection'), { code: 'TG_CLIENT_GONE' });
const DISCARDED = Object.assign(new Error('the response body was discarded'), { code: 'TG_DISCARDED' });
const DEADLINE = Object.assign(new Error("the route's total timeout expired"), { code: 'TG_DEADLINE' });

/**
 * One request to an upstream, as an undici dispatch handler. Compared with `pool.request()`, the
 * body needs no Readable (nor AsyncResource) when it goes straight to the client, which is the
 * common case; a Readable is made only for a plugin that asks for the body.
 */
export class UpstreamExchange implements Dispatcher.DispatchHandler, UpstreamBodySource {
  /** The target it was sent to (null outside a route's upstream, as in tests). */
  readonly target: UpstreamTarget | null;
  #controller: Dispatcher.DispatchController | null = null;
  readonly #owner: ExchangeOwner;
  /** The owner heard of the head, or of a failure before it. */
  #headSettled = false;
  #mode = HELD;
  /** We stopped the exchange ourselves (client gone, body discarded): its errors are not news. */
  #givenUp = false;
  /** Why we gave up; kept for a controller that arrives after the decision. */
  #gaveUpFor: Error | null = null;
  #held: Buffer[] = [];
  #heldBytes = 0;
  #ended = false;
  #failure: Error | null = null;
  #sink: Writable | null = null;
  #onSinkError: ((error: Error) => void) | null = null;
  #readable: Readable | null = null;
  #waitingForDrain = false;
  /** The owner heard `exchangeFinished`. */
  #finishTold = false;

  constructor(owner: ExchangeOwner, target: UpstreamTarget | null = null) {
    this.#owner = owner;
    this.target = target;
  }

  #finish(): void {
    if (this.#finishTold) return;
    this.#finishTold = true;
    this.#owner.exchangeFinished(this);
  }

  /** True once the client went away and the exchange was stopped for that reason. */
  get clientGone(): boolean {
    return this.#gaveUpFor === CLIENT_GONE;
  }

  /** The client went away: stop the upstream request, whatever stage it is in. */
  abort(): void {
    this.#giveUp(CLIENT_GONE);
  }

  /** The route's total timeout expired: stop the exchange (a 504 if no response has started). */
  expire(): void {
    // Before the head, aborting is enough: undici reports the abort, which the owner hears as a failure.
    // After it, whoever has the body must hear why it stops.
    if (this.#headSettled && this.#mode === DIRECT) this.#onSinkError?.(DEADLINE);
    else if (this.#headSettled && this.#mode === STREAMING) this.#readable?.destroy(DEADLINE);
    this.#giveUp(DEADLINE);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#gaveUpFor) controller.abort(this.#gaveUpFor);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (statusCode < 200) return; // 1xx: informational, the final response follows.
    this.#headSettled = true;
    this.#owner.exchangeHead(this, statusCode, headers);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    noteBodyBytes(chunk.length);
    if (this.#mode === DIRECT) {
      if (!this.#sink!.write(chunk)) this.#pauseUntilDrain(controller);
    } else if (this.#mode === STREAMING) {
      if (!this.#readable!.push(chunk)) controller.pause();
    } else if (this.#mode === HELD) {
      this.#held.push(chunk);
      this.#heldBytes += chunk.length;
      if (this.#heldBytes >= HOLD_WITHOUT_PAUSE) controller.pause();
    }
  }

  onResponseEnd(): void {
    this.#finish();
    if (this.#mode === DIRECT) {
      this.#mode = DONE;
      this.#sink!.end();
    } else if (this.#mode === STREAMING) {
      this.#mode = DONE;
      this.#readable!.push(null);
    } else if (this.#mode === HELD) {
      this.#ended = true;
    }
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.#finish();
    if (!this.#headSettled) {
      this.#headSettled = true;
      this.#mode = DONE;
      this.#owner.exchangeFailed(this, error);
      return;
    }
    const mode = this.#mode;
    if (mode !== HELD) this.#mode = DONE;
    if (this.#givenUp) return;
    if (mode === DIRECT) this.#onSinkError!(error);
    else if (mode === STREAMING) this.#readable!.destroy(error);
    else if (mode === HELD) this.#failure = error;
  }

  pipeTo(sink: Writable, onError: (error: Error) => void): void {
    this.#sink = sink;
    this.#onSinkError = onError;
    const { chunks, ended, failure } = this.#takeHeld();
    let writable = true;
    for (const chunk of chunks) writable = sink.write(chunk);
    if (failure) {
      this.#mode = DONE;
      onError(failure);
    } else if (ended) {
      this.#mode = DONE;
      sink.end();
    } else {
      this.#mode = DIRECT;
      if (writable) this.#controller!.resume();
      else this.#pauseUntilDrain(this.#controller!);
    }
  }

  toReadable(): Readable {
    const readable = new Readable({
      read: () => this.#controller?.resume(),
      destroy: (error, callback) => {
        this.#giveUp(DISCARDED);
        callback(error);
      },
    });
    this.#readable = readable;
    const { chunks, ended, failure } = this.#takeHeld();
    this.#mode = ended || failure ? DONE : STREAMING;
    for (const chunk of chunks) readable.push(chunk);
    if (failure) readable.destroy(failure);
    else if (ended) readable.push(null);
    return readable;
  }

  discard(): void {
    this.#giveUp(DISCARDED);
  }

  #takeHeld(): { chunks: Buffer[]; ended: boolean; failure: Error | null } {
    const taken = { chunks: this.#held, ended: this.#ended, failure: this.#failure };
    this.#held = [];
    this.#heldBytes = 0;
    return taken;
  }

  #pauseUntilDrain(controller: Dispatcher.DispatchController): void {
    controller.pause();
    if (this.#waitingForDrain) return;
    this.#waitingForDrain = true;
    this.#sink!.once('drain', () => {
      this.#waitingForDrain = false;
      controller.resume();
    });
  }

  #giveUp(reason: Error): void {
    if (this.#givenUp) return;
    this.#givenUp = true;
    this.#gaveUpFor = reason;
    this.#finish();
    const finished = this.#finished();
    // Whatever still arrives has nowhere to go.
    this.#held = [];
    if (this.#headSettled) this.#mode = DONE;
    if (!finished) this.#controller?.abort(reason);
  }

  /** Nothing is left in flight: the body ended or failed (whether or not anyone has it yet). */
  #finished(): boolean {
    return this.#headSettled && (this.#mode === DONE || (this.#mode === HELD && (this.#ended || this.#failure !== null)));
  }
}
