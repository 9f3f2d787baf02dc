import type { IncomingMessage } from 'node:http';
import type { ResolvedConfig } from '../config/validate.ts';
import { GatewayError } from '../errors.ts';
import { normalisePath, PathRejection } from './request-path.ts';

// RFC 3986 host (reg-name or IP literal) with an optional port. No userinfo, path or whitespace:
// Host values like `a.example@b.example` or `a.example/x` are how absolute URLs built from Host
// get pointed elsewhere.
const VALID_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?$/;

/**
 * Why a request head is refused, or null when it is acceptable: what Node's parser lets through and
 * RFC 9112 §3.2 says a server MUST answer with 400 (a Host repeated or not a valid host), and, when
 * `rejectUnderscores`, a header name with `_`.
 */
export function headProblem(req: IncomingMessage, rejectUnderscores: boolean): string | null {
  if (req.httpVersionMajor >= 2) {
    const authority = req.headers.host ?? (req.headers[':authority'] as string | undefined);
    return authority !== undefined && !VALID_HOST.test(authority) ? 'the :authority is not a valid host' : null;
  }
  const raw = req.rawHeaders;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++;
    else if (rejectUnderscores && name.includes('_')) return `the header name "${name}" has an underscore`;
  }
  if (hosts > 1) return 'more than one Host header';
  const host = req.headers.host;
  if (host !== undefined && !VALID_HOST.test(host)) return 'the Host header is not a valid host';
  return null;
}

/**
 * The edge checks every request and upgrade passes before routing: its target within
 * `maxUrlLength` (414), an acceptable head (400), a path that normalises safely (400). Answers the
 * normalised path to route, or the coded error to refuse the request with; only a refusal allocates.
 */
export function checkRequestHead(req: IncomingMessage, url: string, rawPath: string, server: ResolvedConfig['server']): string | GatewayError {
  if (url.length > server.maxUrlLength) return new GatewayError('TG_ERR_URI_TOO_LONG', undefined, { details: { limit: server.maxUrlLength } });
  const badHead = headProblem(req, server.headersWithUnderscores === 'reject');
  if (badHead !== null) return new GatewayError('TG_ERR_BAD_REQUEST', `The request is malformed: ${badHead}`);
  const normalised = normalisePath(rawPath, server.paths);
  if (normalised instanceof PathRejection) return new GatewayError('TG_ERR_BAD_PATH', `The request path is not acceptable: ${normalised.problem}`);
  return normalised;
}
