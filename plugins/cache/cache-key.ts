import type { RequestContext } from '../../core/index.ts';

export interface KeyOptions {
  /** Only these query parameters count (default: all). */
  includeQuery?: readonly string[];
  /** These query parameters never count (tracking parameters, say). */
  excludeQuery?: readonly string[];
  /** Request headers that are part of the key, in addition to what responses Vary on. */
  headers: readonly string[];
  /** One cache per consumer. */
  perConsumer: boolean;
}

/**
 * The primary cache key: method (HEAD shares GET's entries), scheme, host, path and the query with
 * its parameters sorted, so `?b=2&a=1` and `?a=1&b=2` are one entry. Unkeyed request headers cannot
 * change what is stored, because nothing but this key (and Vary) selects an entry.
 */
export function primaryKey(ctx: RequestContext, scheme: string, options: KeyOptions): string {
  const method = ctx.request.method === 'HEAD' ? 'GET' : ctx.request.method;
  const host = (ctx.request.headers.host ?? '').toLowerCase();
  let key = `${method} ${scheme}://${host}${ctx.request.path}`;
  const query = ctx.request.query;
  if (query !== '') {
    const pairs = query.split('&').filter((pair) => {
      if (pair === '') return false;
      const name = decodeName(pair.split('=', 1)[0]!);
      if (options.includeQuery && !options.includeQuery.includes(name)) return false;
      return !options.excludeQuery?.includes(name);
    });
    if (pairs.length > 0) key += `?${pairs.sort().join('&')}`;
  }
  for (const name of options.headers) {
    const value = ctx.request.headers[name];
    key += `|${name}=${Array.isArray(value) ? value.join(',') : (value ?? '')}`;
  }
  if (options.perConsumer) key += `|consumer=${ctx.consumer?.id ?? ''}`;
  return key;
}

function decodeName(raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return raw;
  }
}
