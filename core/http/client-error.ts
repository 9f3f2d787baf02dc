import { STATUS_CODES } from './node-http.ts';
import type { Duplex } from 'node:stream';
import { GatewayError, type ErrorCode } from '../errors.ts';
import { errorResponse } from './responses.ts';

/**
 * Answers a request Node's parser refused (malformed, headers too large, too slow) with the same
 * coded JSON error as every other failure, then closes the connection.
 */
export function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const code: ErrorCode =
    error.code === 'HPE_HEADER_OVERFLOW' ? 'TG_ERR_HEADERS_TOO_LARGE'
    : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'TG_ERR_REQUEST_TIMEOUT'
    : 'TG_ERR_BAD_REQUEST';
  const response = errorResponse(new GatewayError(code), 'none');
  let head = `HTTP/1.1 ${response.status} ${STATUS_CODES[response.status] ?? ''}\r\n`;
  for (const [name, value] of response.headers.entries()) head += `${name}: ${String(value)}\r\n`;
  socket.end(`${head}connection: close\r\n\r\n${response.body as string}`);
}
