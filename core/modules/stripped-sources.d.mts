/** The directory of stripped sources, or why there is none. */
export function openStrippedSources(dir?: string): { dir: string } | { error: string };
/** Strips every TypeScript ES module this process loads from now on into `dir`. */
export function storeLoadedModules(dir: string): void;
/** Strips the TypeScript ES modules under `root` (up to `limit` files) into `dir`; returns how many were not cached yet. */
export function storeModulesUnder(dir: string, root: string, limit?: number): number;
/** Removes stripped copies older than `maxAgeMs` (a week by default). */
export function pruneStrippedSources(dir: string, maxAgeMs?: number): void;
/** Loads TypeScript ES modules from their stripped copies in `dir` when there is one. */
export function loadStrippedModules(dir: string): void;
