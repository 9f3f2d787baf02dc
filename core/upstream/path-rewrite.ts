import type { ParsedRoute } from '../config/schema.ts';

/** Maps the client's path (no query) and the raw route params to the path sent upstream. */
export type PathRewrite = (path: string, params: Readonly<Record<string, string>>) => string;

const KEEP: PathRewrite = (path) => path;

/** Compiled once per route, so forwarding does no parsing. */
export function compilePathRewrite(route: Pick<ParsedRoute, 'stripPrefix' | 'rewrite'>): PathRewrite {
  if (route.stripPrefix !== undefined) {
    const prefix = route.stripPrefix.replace(/\/$/, '');
    return (path) => (path.length > prefix.length ? path.slice(prefix.length) : '/');
  }
  if (route.rewrite !== undefined) {
    const parts = route.rewrite.split('/').map((segment) =>
      segment === '*' || segment.startsWith(':')
        ? { param: segment === '*' ? '*' : segment.slice(1) }
        : { text: segment },
    );
    return (_path, params) => {
      let out = '';
      for (let i = 0; i < parts.length; i++) {
        const part = parts[i]!;
        if (i > 0) out += '/';
        out += 'text' in part ? part.text : (params[part.param] ?? '');
      }
      return out || '/';
    };
  }
  return KEEP;
}
