import { readFileSync } from 'node:fs';

/** tollgate's own version, from its package.json. */
export const TOLLGATE_VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
