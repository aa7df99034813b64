/**
 * The data port's HTTP/2 side (`listen.http2`), on Node's http2 compatibility
 * API: its requests and responses pass the same pipeline as HTTP/1.1.
 * It never listens itself: the data port's front (./server.ts) hands it the
 * connections that chose h2 (ALPN on TLS, the connection preface on plain
 * text). Limits: `http2MaxConcurrentStreams` streams per connection, a header
 * list no larger than `maxHeaderBytes` (nghttp2 resets a stream over it), no
 * server push, and an idle connection closed (GOAWAY) after keepAliveTimeoutMs.
 */
import { createServer, type Http2Server, type ServerHttp2Session } from 'node:http2';
import type { Config } from './config/schema.js';
import type { Pipeline } from './pipeline.js';

export interface Http2Side {
  readonly server: Http2Server;
  /** Drain: GOAWAY to every connection; their open streams finish. */
  closeIdleConnections(): void;
  closeAllConnections(): void;
}

export function createHttp2Side(listen: Config['listen'], pipeline: Pipeline): Http2Side {
  const server = createServer({
    settings: {
      maxConcurrentStreams: listen.http2MaxConcurrentStreams,
      maxHeaderListSize: listen.maxHeaderBytes,
      enablePush: false,
    },
  });
  const sessions = new Set<ServerHttp2Session>();
  server.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    // A protocol error ends that one connection (nghttp2 sends GOAWAY); it is the client's fault, not ours.
    session.on('error', () => session.destroy());
    // Nothing moved on the connection for keepAliveTimeoutMs: GOAWAY; a stream still open finishes first.
    session.setTimeout(listen.keepAliveTimeoutMs, () => session.close());
  });
  server.on('request', pipeline.handleStream);
  server.on('checkContinue', pipeline.handleStreamContinue);
  return {
    server,
    closeIdleConnections: () => {
      for (const s of sessions) s.close();
    },
    closeAllConnections: () => {
      for (const s of sessions) s.destroy();
    },
  };
}
