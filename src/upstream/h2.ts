/**
 * One HTTP/2 client session to an upstream origin, for gRPC routes: h2 by
 * ALPN on https:// (with the route's TLS options, verification on), h2c with
 * prior knowledge on http://. Every call is a stream on the one session
 * (HTTP/2 multiplexes them, with per-stream flow control); a session that
 * closes, fails or gets a GOAWAY is replaced at the next call, and the calls
 * it carried finish or fail on their own streams.
 */
import { connect, type ClientHttp2Session, type SecureClientSessionOptions } from 'node:http2';
import type { UpstreamTlsOptions } from '../domain.js';

/** Session errors also reach each open stream, which answers its own call: nothing to do here. */
function ignore(): void {}

/** As for the HTTP pools: an upstream that accepts the connection but never completes TLS or the HTTP/2 preface is given up on. */
const CONNECT_TIMEOUT_MS = 5_000;

export class H2Session {
  private session: ClientHttp2Session | null = null;

  constructor(
    readonly origin: string,
    private readonly tls: UpstreamTlsOptions | null,
  ) {}

  /** The session to open the next stream on, connected now if there is none usable. */
  get(): ClientHttp2Session {
    const current = this.session;
    if (current !== null && !current.closed && !current.destroyed) return current;
    const tls = this.tls;
    // noDelay reaches net/tls.connect: without it, small gRPC frames wait on Nagle's algorithm and delayed ACKs.
    const options: SecureClientSessionOptions & { noDelay: boolean } = { noDelay: true };
    if (tls !== null) Object.assign(options, { ca: tls.ca, cert: tls.cert, key: tls.key, servername: tls.servername });
    const session = connect(this.origin, options);
    session.on('error', ignore);
    const timer = setTimeout(() => session.destroy(Object.assign(new Error('upstream HTTP/2 connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' })), CONNECT_TIMEOUT_MS);
    timer.unref();
    // The peer's SETTINGS frame, not 'connect' (which h2c emits as soon as TCP connects), proves it speaks HTTP/2.
    session.once('remoteSettings', () => clearTimeout(timer));
    const forget = (): void => {
      clearTimeout(timer);
      if (this.session === session) this.session = null;
    };
    session.once('close', forget);
    session.once('goaway', forget);
    // Open streams keep it referenced; an idle session must not hold the process up.
    session.unref();
    this.session = session;
    return session;
  }

  /** Closes the session once its streams are done. */
  close(): void {
    const session = this.session;
    this.session = null;
    if (session !== null && !session.closed) session.close();
  }
}
