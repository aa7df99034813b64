/**
 * The data port. Plain HTTP/1.1 (the default) is one node:http server. With
 * `listen.tls` or `listen.http2`, a front server listens instead (tls or net)
 * and hands each connection to the HTTP/1.1 server or the HTTP/2 one
 * (./server-http2.ts): by ALPN on TLS, by the client's first bytes (the h2
 * connection preface) on plain text. Handing a socket over is Node's
 * documented `server.emit('connection', socket)`.
 *
 * The HTTP/1.1 server is hardened: bounded header size (431), a
 * deadline for the request head (slowloris) and the whole request, a
 * keep-alive above common load-balancer idle timeouts, the strict parser only
 * (smuggling attempts — CL+TE, duplicate Content-Length, obs-fold — are
 * refused by llhttp before any stage runs) and a JSON answer for every
 * request the parser refuses (answered and accounted by the pipeline).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { Config } from './config/schema.js';
import { reject, sendError } from './errors.js';
import type { Logger } from './observability/logger.js';
import type { Pipeline } from './pipeline.js';
import { createHttp2Side, type Http2Side } from './server-http2.js';
import { readTlsMaterial, watchTlsMaterial } from './tls/listen-certs.js';

const UNSUPPORTED_EXPECT = reject('bad_request', 'unsupported_expect', 'Only "Expect: 100-continue" is supported.');

/** Any Expect other than 100-continue: answered here (Node would send an empty 417) and never forwarded. */
function refuseExpectation(_req: IncomingMessage, res: ServerResponse): void {
  sendError(res, UNSUPPORTED_EXPECT, randomUUID());
}

export function createHttp1Server(listen: Config['listen'], pipeline: Pipeline): Server {
  const server = createServer(
    {
      maxHeaderSize: listen.maxHeaderBytes,
      headersTimeout: listen.headersTimeoutMs,
      requestTimeout: listen.requestTimeoutMs,
      keepAliveTimeout: listen.keepAliveTimeoutMs,
      // How often Node checks the two deadlines above; its default (30 s) lets a slowloris linger.
      connectionsCheckingInterval: Math.min(1000, listen.headersTimeoutMs),
      insecureHTTPParser: false,
      // Checked by the route stage instead, so the answer is our JSON 400, not Node's empty one.
      requireHostHeader: false,
      noDelay: true,
    },
    pipeline.handleRequest,
  );
  server.on('checkContinue', pipeline.handleContinue);
  server.on('checkExpectation', refuseExpectation);
  server.on('upgrade', pipeline.handleUpgrade);
  server.on('connect', pipeline.handleConnect);
  server.on('clientError', pipeline.handleClientError);
  return server;
}

export interface DataServer {
  /** What listens on the data port. */
  readonly listener: NetServer;
  /** Drain: close idle HTTP/1.1 connections, GOAWAY on HTTP/2 ones. */
  closeIdleConnections(): void;
  closeAllConnections(): void;
  /** After the listener closed: stop the certificate watch and the deadline checks. */
  stop(): void;
}

export function createDataServer(listen: Config['listen'], pipeline: Pipeline, logger: Logger): DataServer {
  const http1 = createHttp1Server(listen, pipeline);
  if (listen.tls === null && !listen.http2) {
    return { listener: http1, closeIdleConnections: () => http1.closeIdleConnections(), closeAllConnections: () => http1.closeAllConnections(), stop: () => {} };
  }
  // This server never listens: 'listening' is what starts Node's checks of headersTimeout and requestTimeout.
  http1.emit('listening');
  const h2 = listen.http2 ? createHttp2Side(listen, pipeline) : null;
  let stopWatching = () => {};
  let listener: NetServer;
  if (listen.tls !== null) {
    const tls = listen.tls;
    const material = readTlsMaterial(tls);
    const server = createTlsServer(
      {
        ...material.options,
        ALPNProtocols: h2 === null ? ['http/1.1'] : ['h2', 'http/1.1'],
        requestCert: tls.caFile !== null,
        rejectUnauthorized: true,
        handshakeTimeout: listen.headersTimeoutMs,
        noDelay: true,
      },
      (socket: TLSSocket) => (h2 !== null && socket.alpnProtocol === 'h2' ? h2.server : http1).emit('connection', socket),
    );
    // A failed handshake (no or untrusted client cert, wrong protocol, too slow) ends that connection only.
    server.on('tlsClientError', (_err, socket) => socket.destroy());
    stopWatching = watchTlsMaterial(tls, material, (options) => server.setSecureContext(options), logger);
    listener = server;
  } else {
    listener = createNetServer({ noDelay: true }, (socket) => sniffPreface(socket, http1, h2!, listen.headersTimeoutMs));
  }
  return {
    listener,
    closeIdleConnections: () => {
      http1.closeIdleConnections();
      h2?.closeIdleConnections();
    },
    closeAllConnections: () => {
      http1.closeAllConnections();
      h2?.closeAllConnections();
    },
    stop: () => {
      stopWatching();
      http1.close();
    },
  };
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * Plain text with `listen.http2`: a connection whose first bytes are the h2
 * preface goes to HTTP/2 (prior knowledge), any other to HTTP/1.1. The bytes
 * read are put back (`unshift`) before the handover, so the chosen server
 * reads the connection from its first byte. HTTP/1.1-only ports never pay
 * for this: without `listen.http2` the node:http server listens itself.
 */
function sniffPreface(socket: Socket, http1: Server, h2: Http2Side, timeoutMs: number): void {
  let seen: Buffer | null = null;
  const giveUp = () => socket.destroy();
  const onData = (chunk: Buffer) => {
    seen = seen === null ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, PREFACE.length);
    const isPreface = seen.compare(PREFACE, 0, n, 0, n) === 0;
    if (isPreface && n < PREFACE.length) return; // a prefix of the preface so far: wait for the rest
    socket.off('data', onData);
    socket.off('error', giveUp);
    socket.off('timeout', giveUp);
    socket.setTimeout(0);
    socket.pause();
    socket.unshift(seen);
    if (isPreface) {
      // Not resumed: the HTTP/2 session reads the bytes put back itself, then takes over the connection's reads.
      h2.server.emit('connection', socket);
    } else {
      http1.emit('connection', socket);
      socket.resume();
    }
  };
  socket.on('data', onData);
  socket.on('error', giveUp);
  // The client has headersTimeoutMs to say which protocol it speaks, as it has to send a request head.
  socket.setTimeout(timeoutMs);
  socket.on('timeout', giveUp);
}
