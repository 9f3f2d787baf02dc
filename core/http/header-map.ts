import { nullRecord } from '../null-record.ts';

export type HeaderValue = string | string[];

/** A valid header field name (an RFC 9110 token). */
export const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
export type HeaderRecord = Record<string, HeaderValue | undefined>;

/**
 * A case-insensitive view over a plain header object. It wraps the object it is given instead of
 * copying it, so handing headers to undici or `res.writeHead` costs nothing extra.
 */
export class HeaderMap {
  #record: HeaderRecord;
  /** Some field was removed, and stays in the record as `undefined`. */
  #removed = false;

  constructor(record: HeaderRecord = nullRecord()) {
    this.#record = record;
  }

  /** The value of a header; repeated values are joined with `, ` (except `set-cookie`, see getAll). */
  get(name: string): string | undefined {
    const value = this.#record[name.toLowerCase()];
    return Array.isArray(value) ? value.join(', ') : value;
  }

  getAll(name: string): string[] {
    const value = this.#record[name.toLowerCase()];
    return value === undefined ? [] : Array.isArray(value) ? value.slice() : [value];
  }

  has(name: string): boolean {
    return this.#record[name.toLowerCase()] !== undefined;
  }

  set(name: string, value: HeaderValue): this {
    this.#record[name.toLowerCase()] = value;
    return this;
  }

  append(name: string, value: string): this {
    const key = name.toLowerCase();
    const current = this.#record[key];
    if (current === undefined) this.#record[key] = value;
    else if (Array.isArray(current)) current.push(value);
    else this.#record[key] = [current, value];
    return this;
  }

  delete(name: string): boolean {
    const key = name.toLowerCase();
    if (this.#record[key] === undefined) return false;
    // Left as undefined, not deleted: a `delete` turns the record into a dictionary-mode object in
    // V8, slower for every later read, write and walk (undici's and node's included). Every auth
    // plugin removes its credential header, so on most routes this is the common case.
    this.#record[key] = undefined;
    this.#removed = true;
    return true;
  }

  *entries(): IterableIterator<[string, HeaderValue]> {
    for (const key in this.#record) {
      const value = this.#record[key];
      if (value !== undefined) yield [key, value];
    }
  }

  /**
   * The underlying object (lower-case names). A removed field is still there, as `undefined`; undici
   * skips those, node:http refuses them (see `toDefinedRecord`).
   */
  toRecord(): HeaderRecord {
    return this.#record;
  }

  /**
   * The fields with none removed, for node:http (`writeHead`, `http.request`), which refuses an
   * `undefined` value: the underlying object when nothing was removed, else a copy that the map
   * uses from then on.
   */
  toDefinedRecord(): Record<string, HeaderValue> {
    if (this.#removed) {
      const defined: HeaderRecord = nullRecord();
      for (const name in this.#record) {
        const value = this.#record[name];
        if (value !== undefined) defined[name] = value;
      }
      this.#record = defined;
      this.#removed = false;
    }
    return this.#record as Record<string, HeaderValue>;
  }
}
