/**
 * Task modules, as both sides load them: a pool thread for every task it runs, the event loop once
 * at setup and for tasks small enough to run inline. Apart from task-runner.ts so that the event
 * loop's side does not load piscina before a pool is started.
 */

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

/** A view over part of a larger (or shared) buffer cannot be moved without taking the rest along. */
export function ownsWholeBuffer(view: ArrayBufferView): boolean {
  return view.byteOffset === 0 && view.byteLength === view.buffer.byteLength && view.buffer instanceof ArrayBuffer;
}
