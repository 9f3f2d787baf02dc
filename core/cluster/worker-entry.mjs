// A worker's first module, plain JavaScript so that it runs before any TypeScript: with the
// primary's stripped sources in place, the worker never loads Node's type stripper
// (core/modules/stripped-sources.mjs says why that matters). argv[2] is the worker's real main.
import { loadStrippedModules } from '../modules/stripped-sources.mjs';

const dir = process.env.TOLLGATE_STRIPPED_SOURCES;
if (dir) loadStrippedModules(dir);
await import(process.argv[2]);
