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
  readonly #record: HeaderRecord;

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
    delete this.#record[key];
    return true;
  }

  *entries(): IterableIterator<[string, HeaderValue]> {
    for (const key in this.#record) {
      const value = this.#record[key];
      if (value !== undefined) yield [key, value];
    }
  }

  /** The underlying object (lower-case names). */
  toRecord(): HeaderRecord {
    return this.#record;
  }
}
