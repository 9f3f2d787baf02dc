/**
 * node:http's functions, taken from the built-in module instead of an ESM `import`. An import
 * builds node:http's module namespace from every export, and reading its `WebSocket`,
 * `CloseEvent` and `MessageEvent` loads Node's bundled undici (the one behind global `fetch`),
 * which tollgate never uses: 13 MiB more resident memory in a bare node process, ~3 MiB in an
 * idle worker.
 * (`import type` from node:http costs nothing; it is erased.)
 */
const http = process.getBuiltinModule('node:http');

export const createServer: typeof http.createServer = http.createServer;
export const request: typeof http.request = http.request;
export const STATUS_CODES: typeof http.STATUS_CODES = http.STATUS_CODES;
