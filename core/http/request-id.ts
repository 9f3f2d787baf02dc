import { randomUUID } from 'node:crypto';

// A client's id is kept only when it is short and plain, so it cannot inject into logs or headers.
const SANE_ID = /^[A-Za-z0-9._:@+=/-]{1,128}$/;

/** The client's `x-request-id` when it is sane, else a new UUID. */
export function requestIdFor(header: string | string[] | undefined): string {
  return typeof header === 'string' && SANE_ID.test(header) ? header : randomUUID();
}
