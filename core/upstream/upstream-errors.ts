import { GatewayError, type ErrorCode } from '../errors.ts';

const BY_CODE: Record<string, ErrorCode> = {
  UND_ERR_CONNECT_TIMEOUT: 'TG_ERR_UPSTREAM_CONNECT_TIMEOUT',
  UND_ERR_HEADERS_TIMEOUT: 'TG_ERR_UPSTREAM_TIMEOUT',
  UND_ERR_BODY_TIMEOUT: 'TG_ERR_UPSTREAM_TIMEOUT',
  TG_DEADLINE: 'TG_ERR_UPSTREAM_TIMEOUT',
  ECONNREFUSED: 'TG_ERR_UPSTREAM_UNAVAILABLE',
  ENOTFOUND: 'TG_ERR_UPSTREAM_UNAVAILABLE',
  EAI_AGAIN: 'TG_ERR_UPSTREAM_UNAVAILABLE',
  EHOSTUNREACH: 'TG_ERR_UPSTREAM_UNAVAILABLE',
  ENETUNREACH: 'TG_ERR_UPSTREAM_UNAVAILABLE',
  ECONNRESET: 'TG_ERR_UPSTREAM_RESET',
  EPIPE: 'TG_ERR_UPSTREAM_RESET',
  UND_ERR_SOCKET: 'TG_ERR_UPSTREAM_RESET',
  UND_ERR_CLOSED: 'TG_ERR_UPSTREAM_RESET',
  UND_ERR_INFO: 'TG_ERR_UPSTREAM_BAD_RESPONSE',
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: 'TG_ERR_UPSTREAM_BAD_RESPONSE',
  UND_ERR_RES_EXCEEDED_MAX_SIZE: 'TG_ERR_UPSTREAM_BAD_RESPONSE',
  UND_ERR_HEADERS_OVERFLOW: 'TG_ERR_UPSTREAM_BAD_RESPONSE',
};

/**
 * Turns whatever undici threw into a coded GatewayError. `clientGone` marks failures caused by the
 * client going away (an aborted upload looks like a reset otherwise); `midStream` failures of a
 * response whose status was already sent.
 */
export function toUpstreamError(error: unknown, upstream: string, origin: string, clientGone: boolean, midStream = false): GatewayError {
  if (clientGone) return new GatewayError('TG_ERR_CLIENT_CLOSED', undefined, { cause: error });
  const code = errorCode(error) ?? errorCode((error as { cause?: unknown })?.cause);
  const mapped = code === undefined ? undefined : code.startsWith('HPE_') ? 'TG_ERR_UPSTREAM_BAD_RESPONSE' : BY_CODE[code];
  const what = mapped ? messageFor(mapped) : 'failed';
  const logDetail = `upstream "${upstream}" (${origin}): ${midStream ? `response body failed mid-stream: ${what}` : what}${code ? ` [${code}]` : ''}`;
  return new GatewayError(mapped ?? 'TG_ERR_UPSTREAM_BAD_RESPONSE', undefined, { cause: error, logDetail });
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function messageFor(code: ErrorCode): string {
  switch (code) {
    case 'TG_ERR_UPSTREAM_CONNECT_TIMEOUT':
      return 'connect timed out';
    case 'TG_ERR_UPSTREAM_TIMEOUT':
      return 'timed out waiting for a response';
    case 'TG_ERR_UPSTREAM_UNAVAILABLE':
      return 'connection refused or host unreachable';
    case 'TG_ERR_UPSTREAM_RESET':
      return 'connection closed before a response';
    default:
      return 'invalid response';
  }
}
