// Instances inherit from an object that inherits nothing: no `__proto__` accessor, no `constructor`.
function NullRecord(): void {}
NullRecord.prototype = Object.create(null);

/**
 * A new, empty record for names that come from a request (headers, path parameters, plugin state).
 * Like `Object.create(null)` it inherits nothing, so a field named `__proto__` or `constructor` is
 * an own field like any other. But V8 keeps it in fast mode, where `Object.create(null)` makes a
 * dictionary from the start: for seven fields, 88 bytes against 480, and 149 ns against 452 to fill
 * and read (docs/benchmarks.md).
 */
export function nullRecord<T>(): Record<string, T> {
  return new (NullRecord as unknown as new () => Record<string, T>)();
}
