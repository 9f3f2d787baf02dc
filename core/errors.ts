/**
 * Every error tollgate raises carries a stable `TG_ERR_*` code. The table below is the one place that
 * says which HTTP status a code answers with; `core/http/error-response.ts` is the one place that turns
 * an error into a response.
 */
export const errorCodes = {
  // Request-side errors (answered to the client).
  TG_ERR_ROUTE_NOT_FOUND: { status: 404, message: 'No route matches this request' },
  TG_ERR_METHOD_NOT_ALLOWED: { status: 405, message: 'The route does not accept this method' },
  TG_ERR_BAD_REQUEST: { status: 400, message: 'The request is malformed' },
  TG_ERR_BAD_PATH: { status: 400, message: 'The request path is not acceptable' },
  TG_ERR_UNAUTHORIZED: { status: 401, message: 'Authentication is required' },
  TG_ERR_FORBIDDEN: { status: 403, message: 'Access is denied' },
  TG_ERR_REQUEST_TIMEOUT: { status: 408, message: 'The request was not received in time' },
  TG_ERR_HEADERS_TOO_LARGE: { status: 431, message: 'The request headers are too large' },
  TG_ERR_URI_TOO_LONG: { status: 414, message: 'The request target is too long' },
  TG_ERR_CLIENT_CLOSED: { status: 499, message: 'The client closed the connection before the response' },
  TG_ERR_PAYLOAD_TOO_LARGE: { status: 413, message: 'The request body is too large' },
  TG_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'The request body has a media type the API does not accept' },
  TG_ERR_VALIDATION: { status: 400, message: 'The request does not match the API description' },
  TG_ERR_UNKNOWN_OPERATION: { status: 404, message: 'No operation of the API description matches this request' },
  TG_ERR_RATE_LIMITED: { status: 429, message: 'Too many requests' },
  TG_ERR_PLUGIN_FAILED: { status: 500, message: 'A plugin failed while handling the request' },
  TG_ERR_INTERNAL: { status: 500, message: 'Internal gateway error' },
  TG_ERR_OFFLOAD_FAILED: { status: 500, message: 'The gateway failed while processing the request' },
  TG_ERR_OFFLOAD_OVERLOADED: { status: 503, message: 'The gateway is too busy to process the request' },
  TG_ERR_OFFLOAD_TIMEOUT: { status: 503, message: 'The gateway took too long to process the request' },
  TG_ERR_UPSTREAM_UNAVAILABLE: { status: 502, message: 'The upstream refused the connection' },
  TG_ERR_UPSTREAM_RESET: { status: 502, message: 'The upstream closed the connection' },
  TG_ERR_UPSTREAM_BAD_RESPONSE: { status: 502, message: 'The upstream sent an invalid response' },
  TG_ERR_RESPONSE_TOO_LARGE: { status: 502, message: 'The upstream response is too large to process' },
  TG_ERR_AUTH_UNAVAILABLE: { status: 503, message: 'The identity provider could not be reached' },
  TG_ERR_NO_HEALTHY_UPSTREAM: { status: 503, message: 'No healthy upstream target is available' },
  TG_ERR_UPSTREAM_OVERLOADED: { status: 503, message: 'The upstream has too many requests in flight' },
  TG_ERR_REDIS_UNAVAILABLE: { status: 503, message: 'A shared store the gateway depends on is unavailable' },
  TG_ERR_UPSTREAM_CONNECT_TIMEOUT: { status: 504, message: 'Timed out connecting to the upstream' },
  TG_ERR_UPSTREAM_TIMEOUT: { status: 504, message: 'Timed out waiting for the upstream' },

  // Startup errors (printed, never answered over HTTP).
  TG_ERR_CONFIG_NOT_FOUND: { status: 500, message: 'No gateway config file was found' },
  TG_ERR_CONFIG_LOAD: { status: 500, message: 'The gateway config could not be loaded' },
  TG_ERR_CONFIG_INVALID: { status: 500, message: 'The gateway config is invalid' },
  TG_ERR_PLUGIN_DEFINITION: { status: 500, message: 'A plugin definition is invalid' },
  TG_ERR_PLUGIN_SETUP: { status: 500, message: 'A plugin failed to set up' },
  TG_ERR_LISTEN: { status: 500, message: 'The gateway could not listen on its address' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof errorCodes;

export interface GatewayErrorOptions {
  /** Overrides the table's status; for plugin-defined errors. */
  status?: number;
  cause?: unknown;
  /** Extra response headers, e.g. `WWW-Authenticate` or `Retry-After`. */
  headers?: Record<string, string>;
  /** Safe to send to the client; keep secrets out. */
  details?: unknown;
  /** Said in the log line, never to the client (internal addresses, say). */
  logDetail?: string;
}

const kGatewayError = Symbol.for('tollgate.GatewayError');

export class GatewayError extends Error {
  readonly code: string;
  readonly status: number;
  readonly headers: Record<string, string> | undefined;
  readonly details: unknown;
  readonly logDetail: string | undefined;

  constructor(code: ErrorCode | (string & {}), message?: string, options: GatewayErrorOptions = {}) {
    const known = (errorCodes as Record<string, { status: number; message: string }>)[code];
    super(message ?? known?.message ?? code, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.status = options.status ?? known?.status ?? 500;
    this.headers = options.headers;
    this.details = options.details;
    this.logDetail = options.logDetail;
  }

  // A plugin may load its own copy of tollgate (a second node_modules); `instanceof` would then fail.
  static is(value: unknown): value is GatewayError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kGatewayError] === true;
  }
}
Object.defineProperty(GatewayError.prototype, kGatewayError, { value: true });

/** Anything thrown, as a GatewayError: itself when it is one, else a 500 that keeps it as the cause. */
export function toGatewayError(thrown: unknown): GatewayError {
  if (GatewayError.is(thrown)) return thrown;
  return new GatewayError('TG_ERR_INTERNAL', undefined, {
    cause: thrown,
    logDetail: thrown instanceof Error ? thrown.message : String(thrown),
  });
}
