import { availableParallelism } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isAbsolute } from 'node:path';
import type { Piscina } from 'piscina';
import type { ParsedOffload } from '../config/schema.ts';
import { GatewayError } from '../errors.ts';
import { counter, histogram } from '../telemetry/metrics.ts';
import { offloadThreads } from './pool-size.ts';
import { loadTask, ownsWholeBuffer, type TaskMessage } from './task-loading.ts';

export interface OffloadRunOptions {
  /**
   * The input's size in bytes, which decides inline or thread. Read from the input when it is bytes
   * or a string; give it for other inputs (an object without a size always goes to a thread).
   */
  size?: number;
  /**
   * Buffers to move to the thread instead of copying them. Moved buffers are empty on this side
   * afterwards; only a view that covers its whole buffer moves (others are copied).
   */
  transfer?: readonly (ArrayBufferView | ArrayBuffer)[];
  /** Stops the task: a queued one is dropped, a running one's thread is replaced. Pass `ctx.signal`. */
  signal?: AbortSignal;
  /** Milliseconds before the task is stopped (503 TG_ERR_OFFLOAD_TIMEOUT). Default: the config's `offload.taskTimeout`. */
  timeout?: number;
  /** `'auto'` (default) chooses by size; `'thread'` and `'inline'` force one. */
  mode?: 'auto' | 'thread' | 'inline';
}

/** A task module made ready to run: call `run` as often as you like. */
export interface OffloadTask<In, Out> {
  readonly name: string;
  /**
   * Runs the task with `input`, inline when the input is smaller than the config's
   * `offload.inlineBelow`, else on a pool thread. Rejects with a coded `GatewayError`:
   * TG_ERR_OFFLOAD_FAILED (the task threw), TG_ERR_OFFLOAD_TIMEOUT, TG_ERR_OFFLOAD_OVERLOADED (queue
   * full) or TG_ERR_CLIENT_CLOSED (`signal` aborted).
   */
  run(input: In, options?: OffloadRunOptions): Promise<Out>;
}

type AnyTask = (input: never) => unknown;

/** `gw.offload`: CPU-heavy work moved off the event loop, to the worker's piscina thread pool. */
export interface Offload {
  /** Threads in this worker's pool. */
  readonly threads: number;
  /** Inputs below this many bytes run inline. */
  readonly inlineBelow: number;
  /**
   * Loads a task module: a TypeScript (or JavaScript) file whose `export` (default: the default
   * export) is a function of one structured-cloneable input. Call it in `setup`: the module is
   * imported here too (for the inline path), so a wrong path fails at startup, naming your plugin.
   * `module` is a `file:` URL (`new URL('./my-task.ts', import.meta.url)`) or an absolute path.
   */
  task<Fn extends AnyTask>(module: URL | string, options?: { export?: string; name?: string }): Promise<OffloadTask<Parameters<Fn>[0], Awaited<ReturnType<Fn>>>>;
}

// Threads start in plain JavaScript, which loads the primary's stripped sources before the runner.
const RUNNER = fileURLToPath(new URL('./task-entry.mjs', import.meta.url));

/**
 * One piscina pool per cluster worker, created when the first task is loaded (a gateway whose
 * plugins never offload starts no threads). Every task module runs through `task-runner.ts`, so one
 * pool serves every plugin.
 */
export class OffloadPool implements Offload {
  readonly threads: number;
  readonly inlineBelow: number;
  readonly #config: ParsedOffload;
  #pool: Piscina | null = null;
  #closed = false;
  /** Tasks running or queued on the threads. */
  #onThreads = 0;
  readonly #tasks = counter(
    'tollgate_offload_tasks_total',
    'Offloaded tasks by task, where they ran (inline or thread) and outcome.',
    ['task', 'mode', 'outcome'] as const,
  );
  readonly #durations = histogram('tollgate_offload_task_duration_seconds', 'Time from asking for a task to its result.', ['task', 'mode'] as const);

  constructor(config: ParsedOffload, workers: number) {
    this.#config = config;
    this.threads = offloadThreads(config.threads, availableParallelism(), workers);
    this.inlineBelow = config.inlineBelow;
  }

  async task<Fn extends AnyTask>(module: URL | string, options: { export?: string; name?: string } = {}): Promise<OffloadTask<Parameters<Fn>[0], Awaited<ReturnType<Fn>>>> {
    const url = toModuleUrl(module);
    const exportName = options.export ?? 'default';
    const inline = await loadTaskAtSetup(url, exportName, 'offload task');
    const name = options.name ?? taskName(url, exportName);
    const pool = await this.#ensurePool();
    const tasks = this.#tasks;
    const durations = this.#durations;
    const config = this.#config;
    const inlineBelow = this.inlineBelow;

    const outcomeOf = (error: unknown, signal: AbortSignal | undefined, timeout: AbortSignal | null): GatewayError => {
      if (signal?.aborted) return new GatewayError('TG_ERR_CLIENT_CLOSED', undefined, { cause: error });
      if (timeout?.aborted) return new GatewayError('TG_ERR_OFFLOAD_TIMEOUT', undefined, { cause: error, logDetail: `task ${name} ran past its timeout` });
      if (GatewayError.is(error)) return error;
      const message = error instanceof Error ? error.message : String(error);
      return new GatewayError('TG_ERR_OFFLOAD_FAILED', undefined, { cause: error, logDetail: `task ${name} threw: ${message}` });
    };
    const label = (error: GatewayError): string =>
      error.code === 'TG_ERR_CLIENT_CLOSED' ? 'cancelled'
        : error.code === 'TG_ERR_OFFLOAD_TIMEOUT' ? 'timeout'
          : 'error';

    const runInline = async (input: unknown): Promise<unknown> => {
      const started = performance.now();
      try {
        const result = await inline(input);
        tasks.inc({ task: name, mode: 'inline', outcome: 'ok' });
        return result;
      } catch (error) {
        const failure = outcomeOf(error, undefined, null);
        tasks.inc({ task: name, mode: 'inline', outcome: label(failure) });
        throw failure;
      } finally {
        durations.observe({ task: name, mode: 'inline' }, (performance.now() - started) / 1000);
      }
    };

    const runThread = async (input: unknown, options: OffloadRunOptions): Promise<unknown> => {
      // Counted here rather than by piscina's maxQueue, which also counts room on threads still starting.
      if (this.#onThreads >= this.threads + config.maxQueue) {
        tasks.inc({ task: name, mode: 'thread', outcome: 'rejected' });
        throw new GatewayError('TG_ERR_OFFLOAD_OVERLOADED', undefined, { headers: { 'retry-after': '1' }, logDetail: `task ${name}: the queue is full` });
      }
      this.#onThreads++;
      const started = performance.now();
      const timeout = AbortSignal.timeout(options.timeout ?? config.taskTimeout);
      const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
      const message: TaskMessage = { module: url, export: exportName, input };
      try {
        const result = await pool.run(message, { signal, transferList: transferListOf(options.transfer) });
        tasks.inc({ task: name, mode: 'thread', outcome: 'ok' });
        return result;
      } catch (error) {
        const failure = outcomeOf(error, options.signal, timeout);
        tasks.inc({ task: name, mode: 'thread', outcome: label(failure) });
        throw failure;
      } finally {
        this.#onThreads--;
        durations.observe({ task: name, mode: 'thread' }, (performance.now() - started) / 1000);
      }
    };

    return {
      name,
      run(input, options = {}) {
        const mode = options.mode ?? 'auto';
        if (options.signal?.aborted) return Promise.reject(new GatewayError('TG_ERR_CLIENT_CLOSED'));
        const small = mode === 'inline' || (mode === 'auto' && (options.size ?? sizeOf(input)) < inlineBelow);
        return (small ? runInline(input) : runThread(input, options)) as Promise<Awaited<ReturnType<Fn>>>;
      },
    };
  }

  /** Finishes queued and running tasks, then stops the threads. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#pool?.close();
    this.#pool = null;
  }

  /** The threads, started with the first task; piscina itself loads then too, not in every worker. */
  async #ensurePool(): Promise<Piscina> {
    if (this.#pool !== null) return this.#pool;
    const { Piscina } = await import('piscina');
    // Closed while piscina loaded (the worker is stopping during setup): start no threads.
    if (this.#closed) throw new Error('the offload pool is closed');
    return (this.#pool ??= new Piscina({
      filename: RUNNER,
      minThreads: this.threads,
      maxThreads: this.threads,
      // Threads stay up: a task module's per-thread state (compiled schemas, say) is worth keeping.
      idleTimeout: Number.MAX_SAFE_INTEGER,
      closeTimeout: 5_000,
      // Through @napi-rs/nice: per thread on Linux, so the event loop keeps its priority.
      niceIncrement: this.#config.niceIncrement,
    }));
  }
}

/**
 * Imports a task module on the event loop during setup, so that a wrong path or export stops the
 * gateway at startup with TG_ERR_PLUGIN_SETUP, `what` and the module named.
 */
export function loadTaskAtSetup(url: string, exportName: string, what: string): ReturnType<typeof loadTask> {
  return loadTask(url, exportName).catch((error: unknown) => {
    throw new GatewayError('TG_ERR_PLUGIN_SETUP', `${what} ${url}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  });
}

function toModuleUrl(module: URL | string): string {
  if (module instanceof URL) return module.href;
  if (module.startsWith('file:')) return module;
  if (isAbsolute(module)) return pathToFileURL(module).href;
  throw new GatewayError('TG_ERR_PLUGIN_SETUP', `offload task "${module}": give a file: URL (new URL('./task.ts', import.meta.url)) or an absolute path`);
}

function taskName(url: string, exportName: string): string {
  const file = url.slice(url.lastIndexOf('/') + 1).replace(/\.[cm]?[jt]s$/, '');
  return exportName === 'default' ? file : `${file}#${exportName}`;
}

function sizeOf(input: unknown): number {
  if (typeof input === 'string') return input.length;
  if (ArrayBuffer.isView(input) || input instanceof ArrayBuffer) return input.byteLength;
  return Number.POSITIVE_INFINITY;
}

function transferListOf(items: OffloadRunOptions['transfer']): ArrayBuffer[] | undefined {
  if (items === undefined || items.length === 0) return undefined;
  const list: ArrayBuffer[] = [];
  for (const item of items) {
    if (item instanceof ArrayBuffer) list.push(item);
    else if (ownsWholeBuffer(item)) list.push(item.buffer as ArrayBuffer);
  }
  return list;
}
