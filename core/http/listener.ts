import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpServer } from './node-http.ts';
import { createServer as createHttpsServer } from 'node:https';
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from 'node:http2';
import type { Server } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { ResolvedConfig } from '../config/validate.ts';
import { answerClientError } from './client-error.ts';

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;
/** Handles an HTTP/1.1 Upgrade; `track` registers the client socket once it is proxied. */
export type UpgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer, track: (socket: Duplex) => void) => void;

/** The public listener, whichever protocol it speaks, with what a drain needs. */
export interface Listener {
  server: Server;
  protocol: 'http' | 'https';
  /** Closes connections with nothing in flight (and asks HTTP/2 clients to go away). */
  closeIdle(): void;
  /** Cuts every connection: the end of a drain that ran out of time. */
  closeAll(): void;
}

/**
 * Plain HTTP, or HTTPS with HTTP/2 offered through ALPN and HTTP/1.1 for clients that do not take
 * it. Certificates are read here, when a worker starts, so a reload rotates them.
 */
export function createListener(config: ResolvedConfig, handle: RequestListener, upgrade?: UpgradeListener): Listener {
  // Upgraded (WebSocket) connections leave the HTTP server's bookkeeping: a drain that runs out of
  // time must cut them itself.
  const upgraded = new Set<Duplex>();
  const track = (socket: Duplex): void => {
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
  };
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (upgrade) upgrade(req, socket, head, track);
    else socket.destroy();
  };
  const cutUpgraded = (): void => {
    for (const socket of upgraded) socket.destroy();
  };
  const limits = {
    headersTimeout: config.server.headersTimeout,
    requestTimeout: config.server.requestTimeout,
    keepAliveTimeout: config.server.keepAliveTimeout,
    maxHeaderSize: config.server.maxHeaderSize,
    // Node checks the two timeouts above only this often (30 s by default), which would let a
    // slow client hold a connection far past its headersTimeout.
    connectionsCheckingInterval: Math.min(1_000, config.server.headersTimeout),
  };
  if (!config.tls) {
    const server = createHttpServer(limits, handle);
    countHeaders(server, config);
    server.on('clientError', answerClientError);
    server.on('upgrade', onUpgrade);
    return { server, protocol: 'http', closeIdle: () => server.closeIdleConnections(), closeAll: () => (server.closeAllConnections(), cutUpgraded()) };
  }
  const tls = { cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key), minVersion: config.tls.minVersion };
  if (!config.tls.http2) {
    const server = createHttpsServer({ ...tls, ...limits }, handle);
    countHeaders(server, config);
    server.on('clientError', answerClientError);
    server.on('upgrade', onUpgrade);
    return { server, protocol: 'https', closeIdle: () => server.closeIdleConnections(), closeAll: () => (server.closeAllConnections(), cutUpgraded()) };
  }
  // The HTTP/2 compatibility API hands us objects shaped like node:http's; the handler reads only
  // what both have.
  const server = createSecureServer(
    // HTTP/2 refuses a header list past maxHeaderListPairs itself (pseudo-headers count too).
    { ...tls, allowHTTP1: true, maxSessionMemory: 32, maxHeaderListPairs: config.server.maxHeaderCount + 8 },
    handle as unknown as (req: Http2ServerRequest, res: Http2ServerResponse) => void,
  );
  server.on('upgrade', onUpgrade);
  const sessions = new Set<Http2Session>();
  const sockets = new Set<TLSSocket>();
  server.on('session', (session: Http2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  server.on('secureConnection', (socket: TLSSocket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return {
    server,
    protocol: 'https',
    closeIdle: () => {
      // GOAWAY: streams in flight finish, no new ones start.
      for (const session of sessions) session.close();
    },
    closeAll: () => {
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
      cutUpgraded();
    },
  };
}

function countHeaders(server: { maxHeadersCount: number | null }, config: ResolvedConfig): void {
  // Node's parser refuses a head with more fields than this (431, through answerClientError).
  server.maxHeadersCount = config.server.maxHeaderCount;
}
