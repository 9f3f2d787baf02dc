import { watch } from 'node:fs';
import { basename, dirname } from 'node:path';

// Editors write a file in several steps (truncate, write, rename): wait for them to settle.
const WATCH_SETTLE_MS = 300;

// A Kubernetes ConfigMap (or Secret) volume updates by renaming a new `..data` link over the old
// one; the config file is a link through it and never changes itself.
const CONFIGMAP_DATA = '..data';

/**
 * Calls `onChange` once a burst of changes to the config file has settled. The folder is watched,
 * not the file: an editor that saves by renaming a new file over the old would end a file watch.
 */
export function watchConfig(filepath: string, onChange: () => void): void {
  let timer: NodeJS.Timeout | null = null;
  const watcher = watch(dirname(filepath), (_event, name) => {
    if (name !== basename(filepath) && name !== CONFIGMAP_DATA) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(onChange, WATCH_SETTLE_MS);
  });
  watcher.unref();
}
