import { isWorkerThread, move, transferableSymbol, valueSymbol } from 'piscina';
import { loadTask, ownsWholeBuffer, type TaskMessage } from './task-loading.ts';

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
