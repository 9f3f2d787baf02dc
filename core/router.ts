/**
 * A segment trie per host, built once at startup. Matching walks the path in place (no split, no
 * regex) and prefers, at each segment, a static child, then a `:param`, then a trailing `*`.
 */
import { nullRecord } from './null-record.ts';

export interface RouteDefinition<T> {
  /** `/exact`, `/orders/:id`, `/static/*`. */
  pattern: string;
  /** Upper-case methods; undefined for all. */
  methods?: readonly string[] | undefined;
  /** Lower-case host, or `*.example.com`; undefined for any host. */
  host?: string | undefined;
  value: T;
}

export interface RouteMatch<T> {
  readonly value: T;
  readonly params: Record<string, string>;
}

/** The path matched a route, but not for this method. */
export interface MethodMismatch {
  allowed: string[];
}

export class RouteConflictError extends Error {}

interface Endpoint<T> {
  value: T;
  paramNames: readonly string[];
  /** The match of a route without parameters, made once: such a match is the same every time. */
  staticMatch: RouteMatch<T> | null;
}

class Node<T> {
  staticChildren: Map<string, Node<T>> | null = null;
  paramChild: Node<T> | null = null;
  /** Endpoints of a trailing `*` at this depth, by method ('' for any). */
  wildcard: Map<string, Endpoint<T>> | null = null;
  /** Endpoints ending exactly here, by method ('' for any). */
  endpoints: Map<string, Endpoint<T>> | null = null;
  /**
   * On a tree's root: the endpoints of every route without parameters or wildcard, by its whole
   * path. The walk prefers static segments at every depth, so when one of these takes the method it
   * is what the walk would find; a request for such a path is then one Map lookup, allocating nothing.
   */
  staticPaths: Map<string, Map<string, Endpoint<T>>> | null = null;
}

/** The params of a match without any; shared, never mutated. */
export const EMPTY_PARAMS: Record<string, string> = Object.freeze(Object.create(null));
const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export class Router<T> {
  readonly #anyHost = new Node<T>();
  readonly #exactHosts = new Map<string, Node<T>>();
  /** `*.example.com` is stored as `.example.com`. */
  readonly #suffixHosts = new Map<string, Node<T>>();

  constructor(routes: readonly RouteDefinition<T>[]) {
    for (const route of routes) this.#add(route);
  }

  /**
   * The route for a request, a method mismatch (answer 405 with `Allow`), or null (404). `path` must be
   * the path without the query string.
   */
  find(method: string, host: string | undefined, path: string): RouteMatch<T> | MethodMismatch | null {
    if (host === undefined || (this.#exactHosts.size === 0 && this.#suffixHosts.size === 0)) return lookup(this.#anyHost, method, path);
    // The most specific host first. A tree whose routes match the path but not the method does not
    // end the search: a less specific one may take the method (as Kong matches host, path and
    // method together). Only when none does is the answer a 405, naming what all of them allow.
    let mismatch: MethodMismatch | null = null;
    const hostname = normaliseHost(host);
    const exact = this.#exactHosts.get(hostname);
    if (exact !== undefined) {
      const found = lookup(exact, method, path);
      if (found !== null && !isMethodMismatch(found)) return found;
      mismatch = mergeMismatch(mismatch, found);
    }
    for (let dot = hostname.indexOf('.'); dot !== -1; dot = hostname.indexOf('.', dot + 1)) {
      const node = this.#suffixHosts.get(hostname.slice(dot));
      if (node === undefined) continue;
      const found = lookup(node, method, path);
      if (found !== null && !isMethodMismatch(found)) return found;
      mismatch = mergeMismatch(mismatch, found);
    }
    const found = lookup(this.#anyHost, method, path);
    if (found !== null && !isMethodMismatch(found)) return found;
    return mergeMismatch(mismatch, found);
  }

  #add(route: RouteDefinition<T>): void {
    let root = this.#anyHost;
    if (route.host !== undefined) {
      const suffix = route.host.startsWith('*.');
      const key = suffix ? route.host.slice(1) : route.host;
      const table = suffix ? this.#suffixHosts : this.#exactHosts;
      root = table.get(key) ?? new Node<T>();
      table.set(key, root);
    }
    const segments = route.pattern.slice(1).split('/');
    const paramNames: string[] = [];
    let node = root;
    for (let i = 0; i < segments.length; i++) {
      const segment = segments[i]!;
      const last = i === segments.length - 1;
      if (segment === '*') {
        if (!last) throw new RouteConflictError(`"*" may only end a path: ${route.pattern}`);
        paramNames.push('*');
        node.wildcard ??= new Map();
        addEndpoint(node.wildcard, route, paramNames);
        return;
      }
      if (segment.startsWith(':')) {
        const name = segment.slice(1);
        if (!PARAM_NAME.test(name)) throw new RouteConflictError(`invalid parameter name "${segment}" in ${route.pattern}`);
        if (paramNames.includes(name)) throw new RouteConflictError(`parameter "${segment}" appears twice in ${route.pattern}`);
        paramNames.push(name);
        node = node.paramChild ??= new Node<T>();
      } else {
        if (segment.includes('*') || segment.includes(':')) {
          throw new RouteConflictError(`"${segment}" mixes text with ":" or "*"; use a whole segment`);
        }
        node.staticChildren ??= new Map();
        let child = node.staticChildren.get(segment);
        if (!child) node.staticChildren.set(segment, (child = new Node<T>()));
        node = child;
      }
    }
    node.endpoints ??= new Map();
    addEndpoint(node.endpoints, route, paramNames);
    if (paramNames.length === 0) (root.staticPaths ??= new Map()).set(route.pattern, node.endpoints);
  }
}

function addEndpoint<T>(table: Map<string, Endpoint<T>>, route: RouteDefinition<T>, paramNames: readonly string[]): void {
  const methods = route.methods ?? [''];
  for (const method of methods) {
    if (table.has(method)) {
      const what = method === '' ? 'every method' : method;
      throw new RouteConflictError(`${what} ${route.pattern}${route.host ? ` on ${route.host}` : ''} is already routed`);
    }
    const staticMatch = paramNames.length === 0 ? Object.freeze({ value: route.value, params: EMPTY_PARAMS }) : null;
    table.set(method, { value: route.value, paramNames, staticMatch });
  }
}

function lookup<T>(root: Node<T>, method: string, path: string): RouteMatch<T> | MethodMismatch | null {
  const exact = root.staticPaths?.get(path);
  if (exact !== undefined) {
    const hit = pick(exact, method);
    // Not for this method: a parameter or wildcard route may take it, so the walk decides.
    if (hit !== undefined) return hit.staticMatch!;
  }
  const values: string[] = [];
  let mismatch: MethodMismatch | null = null;

  const visit = (node: Node<T>, start: number): RouteMatch<T> | null => {
    if (start > path.length) {
      const hit = pick(node.endpoints, method);
      if (hit) return toMatch(hit, values);
      if (node.endpoints) mismatch = allowedToo(mismatch, node.endpoints);
      return null;
    }
    let end = path.indexOf('/', start);
    if (end === -1) end = path.length;
    if (node.staticChildren) {
      const child = node.staticChildren.get(path.slice(start, end));
      const found = child ? visit(child, end + 1) : null;
      if (found) return found;
    }
    if (node.paramChild && end > start) {
      values.push(path.slice(start, end));
      const found = visit(node.paramChild, end + 1);
      if (found) return found;
      values.pop();
    }
    if (node.wildcard) {
      const hit = pick(node.wildcard, method);
      if (hit) {
        values.push(path.slice(start));
        return toMatch(hit, values);
      }
      mismatch = allowedToo(mismatch, node.wildcard);
    }
    return null;
  };

  return visit(root, 1) ?? mismatch;
}

function pick<T>(table: Map<string, Endpoint<T>> | null, method: string): Endpoint<T> | undefined {
  if (!table) return undefined;
  return table.get(method) ?? table.get('') ?? (method === 'HEAD' ? table.get('GET') : undefined);
}

/**
 * The methods of every route whose path matched, for `Allow` (RFC 9110 §15.5.6: all the target's
 * methods, not only those of the most specific route).
 */
function allowedToo<T>(mismatch: MethodMismatch | null, table: Map<string, Endpoint<T>>): MethodMismatch {
  const methods = mismatch === null ? [] : mismatch.allowed;
  for (const method of table.keys()) if (!methods.includes(method)) methods.push(method);
  if (methods.includes('GET') && !methods.includes('HEAD')) methods.push('HEAD');
  return mismatch ?? { allowed: methods };
}

function mergeMismatch(into: MethodMismatch | null, from: MethodMismatch | null): MethodMismatch | null {
  if (into === null || from === null) return into ?? from;
  for (const method of from.allowed) if (!into.allowed.includes(method)) into.allowed.push(method);
  return into;
}

function toMatch<T>(endpoint: Endpoint<T>, values: readonly string[]): RouteMatch<T> {
  if (endpoint.staticMatch !== null) return endpoint.staticMatch;
  const params = nullRecord<string>();
  for (let i = 0; i < endpoint.paramNames.length; i++) params[endpoint.paramNames[i]!] = values[i]!;
  return { value: endpoint.value, params };
}

function normaliseHost(host: string): string {
  // `[::1]:8080` keeps its brackets; `example.com:8080` loses the port.
  const end = host.startsWith('[') ? host.indexOf(']') + 1 : host.lastIndexOf(':');
  let name = end > 0 ? host.slice(0, end) : host;
  // `api.example.com.` (fully qualified) is the same host: without this it would miss the host's
  // routes (and their plugins) and fall through to routes for any host.
  if (name.endsWith('.')) name = name.slice(0, -1);
  return name.toLowerCase();
}

export function isMethodMismatch<T>(result: RouteMatch<T> | MethodMismatch | null): result is MethodMismatch {
  return result !== null && 'allowed' in result;
}
