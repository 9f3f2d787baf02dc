import type { IncomingMessage } from 'node:http';

// RFC 3986 host (reg-name or IP literal) with an optional port. No userinfo, path or whitespace:
// Host values like `a.example@b.example` or `a.example/x` are how absolute URLs built from Host
// get pointed elsewhere.
const VALID_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?$/;

/**
 * Why a request head is refused, with the status it gets, or null when it is acceptable. What
 * Node's parser lets through and RFC 9112 forbids: more header fields than `maxHeaderCount`
 * (Node would drop the rest without a word), and a Host that is repeated or malformed
 * (RFC 9112 §3.2: a server MUST answer 400).
 */
export function headProblem(req: IncomingMessage, maxHeaderCount: number): { tooMany: true } | { host: string } | null {
  const raw = req.rawHeaders;
  if (req.httpVersionMajor >= 2) {
    const authority = req.headers.host ?? (req.headers[':authority'] as string | undefined);
    return authority !== undefined && !VALID_HOST.test(authority) ? { host: 'the :authority is not a valid host' } : null;
  }
  if (raw.length > 2 * maxHeaderCount) return { tooMany: true };
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++;
  }
  if (hosts > 1) return { host: 'more than one Host header' };
  const host = req.headers.host;
  if (host !== undefined && !VALID_HOST.test(host)) return { host: 'the Host header is not a valid host' };
  return null;
}
