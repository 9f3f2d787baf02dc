/**
 * The module `name` (a relative path without extension) next to the module at `base`, with the
 * extension `base` has: `.ts` when tollgate runs from its sources, `.js` from the built package
 * (Node strips types everywhere except under node_modules, so the published package is compiled).
 */
export function siblingModule(base: string, name: string): URL {
  return new URL(`${name}${base.endsWith('.ts') ? '.ts' : '.js'}`, base);
}
