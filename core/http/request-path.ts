// Dot segments, raw or percent-encoded, would let an upstream that normalises paths serve a path
// other than the one the route (and its plugins) matched. They are refused, not resolved.
const DOT_SEGMENT = /(?:^|\/)(?:\.|%2e){1,2}(?:\/|$)/i;
const ENCODED_NUL = /%00/;

/** Why a request target is refused, or null when it is acceptable. */
export function pathProblem(path: string): string | null {
  if (path.charCodeAt(0) !== 47 /* / */) return 'the request target must be an absolute path';
  if (path.includes('.') || path.includes('%')) {
    if (DOT_SEGMENT.test(path)) return 'dot segments ("." or "..") are not allowed in the path';
    if (ENCODED_NUL.test(path)) return 'NUL is not allowed in the path';
  }
  return null;
}

/** Percent-decodes route parameters in place; null when one is malformed. */
export function decodeParams(params: Record<string, string>): Record<string, string> | null {
  for (const name in params) {
    const value = params[name]!;
    if (!value.includes('%')) continue;
    try {
      params[name] = decodeURIComponent(value);
    } catch {
      return null;
    }
  }
  return params;
}
