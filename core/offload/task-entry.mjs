// An offload thread's first module, plain JavaScript for the reason core/cluster/worker-entry.mjs
// gives: with the primary's stripped sources, a thread never loads Node's type stripper either.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadStrippedModules } from '../modules/stripped-sources.mjs';

// The worker's gc function (core/http/body-scavenges.ts, WORKER_GC_NAME) reaches its threads' globals
// too; a task has no use for it.
if (typeof globalThis.__tollgate_gc === 'function') globalThis.__tollgate_gc = undefined;
const dir = process.env.TOLLGATE_STRIPPED_SOURCES;
if (dir) loadStrippedModules(dir);
// From the sources, the runner is TypeScript; from the published package, JavaScript.
const source = new URL('./task-runner.ts', import.meta.url);
const runner = await import(existsSync(fileURLToPath(source)) ? source.href : new URL('./task-runner.js', import.meta.url).href);
export default runner.default;
