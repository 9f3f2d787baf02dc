/**
 * How request paths are normalised before routing. The path a route matches is the path sent
 * upstream, so no spelling of a path (`/%61dmin`, `//admin`, `/public/..;/admin`) can match one
 * route and be read by the upstream as another route's path.
 */
export interface PathPolicy {
  /** `%2F` and `%5C` in a segment: refused, or kept encoded (the segment stays one segment). */
  encodedSlashes: 'reject' | 'keep';
  /** `;` in the path (matrix parameters, which Java servers strip): refused, or kept. */
  semicolons: 'reject' | 'keep';
}

/** Why a request target was refused. */
export class PathRejection {
  readonly problem: string;
  constructor(problem: string) {
    this.problem = problem;
  }
}

const HEX = '0123456789ABCDEF';

/**
 * The path as it is routed and forwarded, or why it is refused. Following RFC 3986 §6.2.2,
 * percent-encoded unreserved characters are decoded (`%61` is `a`) and other escapes get upper-case
 * hex; runs of `/` become one. Refused: dot segments (`.`, `..`, `%2e%2e`, `..;x`), backslashes, NUL
 * and other control characters, malformed escapes and escapes that are not valid UTF-8 (overlong
 * forms), and, by policy, encoded slashes and semicolons. A path that needs none of this (the
 * usual case) is returned as is after one scan.
 */
export function normalisePath(path: string, policy: PathPolicy): string | PathRejection {
  if (path.charCodeAt(0) !== 47 /* / */) return new PathRejection('the request target must be an absolute path');
  let previous = 0;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    // `.`, `%`, `;`, `\`, `//`, and anything outside printable ASCII take the slow path.
    if (c === 46 || c === 37 || c === 59 || c === 92 || c <= 32 || c >= 127 || (c === 47 && previous === 47)) return normaliseSlowly(path, policy);
    previous = c;
  }
  return path;
}

function normaliseSlowly(path: string, policy: PathPolicy): string | PathRejection {
  let out = '';
  let start = 1;
  while (start < path.length) {
    let end = path.indexOf('/', start);
    if (end === -1) end = path.length;
    // An empty segment is a doubled slash: merged away.
    if (end > start) {
      const segment = normaliseSegment(path, start, end, policy);
      if (segment instanceof PathRejection) return segment;
      out += '/' + segment;
    }
    start = end + 1;
  }
  // The path's own trailing slash is kept.
  return path.charCodeAt(path.length - 1) === 47 ? out + '/' : out === '' ? '/' : out;
}

function normaliseSegment(path: string, start: number, end: number, policy: PathPolicy): string | PathRejection {
  let segment = '';
  let highEscapes = false;
  for (let i = start; i < end; i++) {
    const c = path.charCodeAt(i);
    if (c === 37 /* % */) {
      const byte = hexByte(path, i + 1);
      if (byte === -1) return new PathRejection('the path has a malformed percent-encoding');
      i += 2;
      if (isUnreserved(byte)) segment += String.fromCharCode(byte);
      else if (byte < 32 || byte === 127) return new PathRejection('control characters (NUL included) are not allowed in the path');
      else if (byte === 47 || byte === 92) {
        if (policy.encodedSlashes === 'reject') return new PathRejection('encoded slashes (%2F, %5C) are not allowed in the path');
        segment += byte === 47 ? '%2F' : '%5C';
      } else {
        if (byte === 59 && policy.semicolons === 'reject') return new PathRejection('semicolons are not allowed in the path');
        if (byte >= 128) highEscapes = true;
        segment += '%' + HEX[byte >> 4]! + HEX[byte & 15]!;
      }
    } else if (c === 92 /* \ */) {
      return new PathRejection('backslashes are not allowed in the path');
    } else if (c <= 32 || c >= 127) {
      return new PathRejection('the path must be ASCII (percent-encode other characters)');
    } else if (c === 59 /* ; */ && policy.semicolons === 'reject') {
      return new PathRejection('semicolons are not allowed in the path');
    } else {
      segment += path[i];
    }
  }
  // A dot segment, also with matrix parameters (`..;x`, which Tomcat resolves as `..`).
  const semicolon = segment.indexOf(';');
  const name = semicolon === -1 ? segment : segment.slice(0, semicolon);
  if (name === '.' || name === '..') return new PathRejection('dot segments ("." or "..") are not allowed in the path');
  if (highEscapes) {
    try {
      // Throws on bytes that are not valid UTF-8, overlong forms (`%c0%ae`) and encoded surrogates.
      decodeURIComponent(segment);
    } catch {
      return new PathRejection('the path has percent-encoded bytes that are not valid UTF-8');
    }
  }
  return segment;
}

/** The byte two hex digits at `at` spell, or -1 (past the end, charCodeAt is NaN: not a digit). */
function hexByte(text: string, at: number): number {
  const high = hexDigit(text.charCodeAt(at));
  const low = hexDigit(text.charCodeAt(at + 1));
  return high === -1 || low === -1 ? -1 : (high << 4) | low;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved(byte: number): boolean {
  return (
    (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122) || (byte >= 48 && byte <= 57) || byte === 45 || byte === 46 || byte === 95 || byte === 126
  );
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
