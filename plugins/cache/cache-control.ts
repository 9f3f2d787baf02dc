/**
 * Cache-Control (RFC 9111 §5.2) as a map of lower-case directive names to their values (`true` for a
 * directive without one). Quoted values are unquoted; repeated directives keep the first.
 */
export type Directives = ReadonlyMap<string, string | true>;

const EMPTY: Directives = new Map();

export function parseCacheControl(value: string | string[] | undefined): Directives {
  if (value === undefined) return EMPTY;
  const text = Array.isArray(value) ? value.join(',') : value;
  if (text === '') return EMPTY;
  const out = new Map<string, string | true>();
  for (const match of text.matchAll(/\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^,\s]*))?\s*(?:,|$)/g)) {
    const name = match[1]!.toLowerCase();
    if (out.has(name)) continue;
    const raw = match[2];
    out.set(name, raw === undefined ? true : raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw);
  }
  return out;
}

/** A delta-seconds directive (`max-age=60`), or null when absent or malformed. */
export function seconds(directives: Directives, name: string): number | null {
  const value = directives.get(name);
  if (typeof value !== 'string' || !/^\d+$/.test(value)) return null;
  return Number(value);
}
