import { isWorkerThread, move, transferableSymbol, valueSymbol } from 'piscina';

/** What the pool's threads receive: which task to run and its input. */
export interface TaskMessage {
  /** `file:` URL of the task module. */
  readonly module: string;
  /** The export to call. */
  readonly export: string;
  readonly input: unknown;
}

type TaskFunction = (input: unknown) => unknown;

// Per thread: a task module is imported once, then its function is called for every task.
const loaded = new Map<string, Promise<TaskFunction>>();

/** Imports a task module (TypeScript loads through Node's type stripping) and finds its function. */
export function loadTask(module: string, exportName: string): Promise<TaskFunction> {
  const key = `${module}#${exportName}`;
  let task = loaded.get(key);
  if (task === undefined) {
    task = import(module).then((namespace: Record<string, unknown>) => {
      const fn = namespace[exportName];
      if (typeof fn !== 'function') throw new TypeError(`${module} has no function export "${exportName}"`);
      return fn as TaskFunction;
    });
    loaded.set(key, task);
  }
  return task;
}

/**
 * The one function every pool thread runs: calls the task and, when the result is bytes that own
 * their whole buffer, moves the buffer back to the event loop instead of copying it.
 */
export default async function runTask(message: TaskMessage): Promise<unknown> {
  const task = await loadTask(message.module, message.export);
  const result = await task(message.input);
  if (ArrayBuffer.isView(result) && ownsWholeBuffer(result)) return move(result as Uint8Array);
  return result;
}

/**
 * For a task that answers with an object holding bytes (`{ body, changed }`, say): on a pool thread
 * the bytes' buffer is moved back with the object instead of copied; inline, the object is returned
 * as it is. Only the top-level result is ever moved, hence this wrapper.
 */
export function withMovedBytes<T extends object>(value: T, bytes: Uint8Array): T {
  if (!isWorkerThread || !ownsWholeBuffer(bytes)) return value;
  return move({
    get [transferableSymbol]() {
      return bytes.buffer;
    },
    get [valueSymbol]() {
      return value;
    },
  } as never) as T;
}

/** A view over part of a larger (or shared) buffer cannot be moved without taking the rest along. */
export function ownsWholeBuffer(view: ArrayBufferView): boolean {
  return view.byteOffset === 0 && view.byteLength === view.buffer.byteLength && view.buffer instanceof ArrayBuffer;
}
