import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { openStrippedSources, pruneStrippedSources, storeLoadedModules, storeModulesUnder } from '../modules/stripped-sources.mjs';

/** Env var naming the directory of stripped sources a worker (and its threads) load TypeScript from. */
export const ENV_STRIPPED_SOURCES = 'TOLLGATE_STRIPPED_SOURCES';

const TOLLGATE_ROOT = new URL('../../', import.meta.url);

/**
 * Prepares the JavaScript workers load instead of stripping TypeScript themselves (~17 MiB of
 * resident memory each): tollgate's own modules now, and the config and its plugins as this process
 * loads them. Returns the directory, or null when there is no usable one (workers then strip as
 * usual; only their memory differs).
 */
export function prepareWorkerSources(logger: Logger | null): string | null {
  const opened = openStrippedSources();
  if ('error' in opened) {
    logger?.warn(`workers will strip TypeScript themselves (about 17 MiB each): no cache directory for stripped sources (${opened.error}); set TOLLGATE_CACHE_DIR`);
    return null;
  }
  pruneStrippedSources(opened.dir);
  storeLoadedModules(opened.dir);
  for (const folder of ['core', 'plugins']) storeModulesUnder(opened.dir, fileURLToPath(new URL(folder, TOLLGATE_ROOT)));
  return opened.dir;
}

/**
 * Strips the modules next to the config: task modules for worker threads are imported only by the
 * workers, never by this process, so they are found by their folder instead.
 */
export function prepareConfigFolder(dir: string | null, configPath: string): void {
  if (dir !== null) storeModulesUnder(dir, dirname(configPath));
}
