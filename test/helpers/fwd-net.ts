/**
 * Test helpers for the forward / sanitize / hardening / websocket / streaming
 * suites: a raw HTTP/1.1 client that parses whole responses (so a keep-alive
 * answer does not have to wait for a close), a node:http one-shot client that
 * can set any Host header, upstreams that misbehave on purpose, and small
 * polling / process helpers. Nothing here is a mock: every helper talks to
 * real sockets on loopback.
 */
import { readFileSync } from 'node:fs';
import { request, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { startUpstream, type Upstream } from './servers.js';

export const MB = 1024 * 1024;

/** An HTTP response parsed from raw bytes. Header names are lower-cased in `headers` (joined with ', '). */
export interface ParsedResponse {
  status: number;
  statusLine: string;
  /** Interim (1xx) responses that came before this one, by status. */
  interim: number[];
  headers: Record<string, string>;
  /** [name, value, …] as sent, names in their original case. */
  rawHeaders: string[];
  body: Buffer;
  /** The whole head text (status line + headers). */
  head: string;
}

export interface ErrorBody {
  error: { code: string; message: string; requestId: string };
}

export function jsonOf<T = unknown>(res: { body: Buffer }): T {
  return JSON.parse(res.body.toString('utf8')) as T;
}

export function errorCodeOf(res: { body: Buffer }): string {
  return jsonOf<ErrorBody>(res).error.code;
}

interface HeadParse {
  status: number;
  statusLine: string;
  headers: Record<string, string>;
  rawHeaders: string[];
  head: string;
}

function parseHead(head: string): HeadParse {
  const lines = head.split('\r\n');
  const statusLine = lines[0]!;
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (m === null) throw new Error(`not an HTTP response: ${JSON.stringify(statusLine.slice(0, 100))}`);
  const headers: Record<string, string> = {};
  const rawHeaders: string[] = [];
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    rawHeaders.push(name, value);
    const lower = name.toLowerCase();
    headers[lower] = lower in headers ? `${headers[lower]}, ${value}` : value;
  }
  return { status: Number(m[1]), statusLine, headers, rawHeaders, head };
}

/**
 * Tries to parse one complete response from the start of `buf`. Returns the
 * response and the number of bytes it used, or null when more bytes are needed.
 * With `eof`, a response without a length ends where the bytes end.
 */
function tryParse(buf: Buffer, opts: { head?: boolean; eof: boolean }): { res: ParsedResponse; used: number } | null {
  const interim: number[] = [];
  let offset = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', offset);
    if (end === -1) return null;
    const parsed = parseHead(buf.subarray(offset, end).toString('latin1'));
    let pos = end + 4;
    if (parsed.status >= 100 && parsed.status < 200 && parsed.status !== 101) {
      interim.push(parsed.status);
      offset = pos;
      continue;
    }
    const finish = (body: Buffer, used: number) => ({ res: { ...parsed, interim, body }, used });
    if (opts.head || parsed.status === 204 || parsed.status === 304 || parsed.status === 101) return finish(Buffer.alloc(0), pos);
    if (/chunked/i.test(parsed.headers['transfer-encoding'] ?? '')) {
      const parts: Buffer[] = [];
      for (;;) {
        const nl = buf.indexOf('\r\n', pos);
        if (nl === -1) return opts.eof ? finish(Buffer.concat(parts), buf.length) : null;
        const size = parseInt(buf.subarray(pos, nl).toString('latin1'), 16);
        if (Number.isNaN(size)) throw new Error('bad chunk size');
        if (size === 0) {
          // trailers until an empty line
          const trailerEnd = buf.indexOf('\r\n\r\n', nl);
          if (buf.subarray(nl, nl + 4).toString('latin1') === '\r\n\r\n') return finish(Buffer.concat(parts), nl + 4);
          if (trailerEnd === -1) return opts.eof ? finish(Buffer.concat(parts), buf.length) : null;
          return finish(Buffer.concat(parts), trailerEnd + 4);
        }
        if (buf.length < nl + 2 + size + 2) return opts.eof ? finish(Buffer.concat([...parts, buf.subarray(nl + 2)]), buf.length) : null;
        parts.push(buf.subarray(nl + 2, nl + 2 + size));
        pos = nl + 2 + size + 2;
      }
    }
    const cl = parsed.headers['content-length'];
    if (cl !== undefined) {
      const n = Number(cl);
      if (buf.length - pos < n) return opts.eof ? finish(buf.subarray(pos), buf.length) : null;
      return finish(buf.subarray(pos, pos + n), pos + n);
    }
    if (!opts.eof) return null;
    return finish(buf.subarray(pos), buf.length);
  }
}

/**
 * A raw TCP connection to a server: write exact bytes, read whole responses
 * one at a time (keep-alive friendly), notice when the server closes.
 */
export class RawConnection {
  readonly socket: Socket;
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;
  readonly whenClosed: Promise<void>;
  readonly ready: Promise<void>;

  constructor(port: number, host = '127.0.0.1') {
    this.socket = connect(port, host);
    this.socket.setNoDelay(true);
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', reject);
    });
    this.socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.wake();
    });
    this.socket.on('error', () => {});
    this.whenClosed = new Promise((resolve) => {
      this.socket.on('close', () => {
        this.closed = true;
        this.wake();
        resolve();
      });
    });
  }

  static async open(port: number): Promise<RawConnection> {
    const c = new RawConnection(port);
    await c.ready;
    return c;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private next(timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.write(data, () => resolve());
    });
  }

  /** Bytes received and not yet consumed by readResponse / readUntil. */
  get pending(): Buffer {
    return this.buf;
  }

  /**
   * Resolves with the next complete response, or null if the server closed
   * (or `timeoutMs` passed) before one arrived.
   */
  async readResponse(opts: { head?: boolean; timeoutMs?: number } = {}): Promise<ParsedResponse | null> {
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    for (;;) {
      const got = tryParse(this.buf, { head: opts.head, eof: this.closed });
      if (got !== null) {
        this.buf = this.buf.subarray(got.used);
        return got.res;
      }
      if (this.closed) return null;
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await this.next(left);
    }
  }

  /** Waits until at least `n` unconsumed bytes are buffered (or close / timeout); returns and consumes them. */
  async readBytes(n: number, timeoutMs = 10_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n && !this.closed && Date.now() < deadline) await this.next(deadline - Date.now());
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(out.length);
    return out;
  }

  /** Waits until the server closes the connection; false if it is still open after `timeoutMs`. */
  async waitClosed(timeoutMs: number): Promise<boolean> {
    if (this.closed) return true;
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([this.whenClosed.then(() => true), new Promise<boolean>((res) => (timer = setTimeout(() => res(false), timeoutMs)))]);
    clearTimeout(timer);
    return r;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Sends `payload` on a fresh connection and returns the first complete response (null: closed without one). */
export async function rawExchange(port: number, payload: string | Buffer, opts: { head?: boolean; timeoutMs?: number } = {}): Promise<ParsedResponse | null> {
  const conn = await RawConnection.open(port);
  try {
    await conn.write(payload);
    return await conn.readResponse(opts);
  } finally {
    conn.destroy();
  }
}

/** A response read with node:http. */
export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

export interface SendOptions {
  method?: string;
  path: string;
  headers?: OutgoingHttpHeaders;
  /** Sent with Content-Length unless `chunks` is used. */
  body?: string | Buffer;
  /** Sent one write at a time without Content-Length (chunked). */
  chunks?: (string | Buffer)[];
  /** Send `Expect: 100-continue` and the body only after the 100. */
  expectContinue?: boolean;
  timeoutMs?: number;
}

/** One request with node:http on a fresh connection (no agent), any Host header allowed. */
export function send(port: number, opts: SendOptions): Promise<HttpResult & { gotContinue: boolean }> {
  return new Promise((resolve, reject) => {
    const headers: OutgoingHttpHeaders = { ...opts.headers };
    if (opts.body !== undefined && headers['content-length'] === undefined) headers['content-length'] = Buffer.byteLength(opts.body);
    if (opts.expectContinue) headers.expect = '100-continue';
    let gotContinue = false;
    const req = request({ host: '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path, headers, agent: false, timeout: opts.timeoutMs ?? 20_000 });
    const writeBody = () => {
      if (opts.chunks) {
        for (const c of opts.chunks) req.write(c);
        req.end();
      } else req.end(opts.body);
    };
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.on('continue', () => {
      gotContinue = true;
      writeBody();
    });
    req.on('response', (res: IncomingMessage) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('error', reject);
      res.on('end', () => {
        resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(parts), gotContinue });
        if (!req.writableEnded) req.destroy();
      });
    });
    if (opts.expectContinue) req.flushHeaders();
    else writeBody();
  });
}

/** Polls `check` until it returns true; throws with `what` after `timeoutMs`. */
export async function waitFor(check: () => boolean, what: string, timeoutMs = 10_000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await sleep(everyMs);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A loopback port that nobody listens on (bound, then closed). */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Header names of a raw header list, lower-cased and with `_` spelt `-` (how some upstream stacks see them). */
export function headerNames(rawHeaders: readonly string[]): string[] {
  return rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase().replaceAll('_', '-'));
}

/** How many times a header (any case, `_` or `-`) appears in a raw header list. */
export function countHeader(rawHeaders: readonly string[], name: string): number {
  const want = name.toLowerCase().replaceAll('_', '-');
  return headerNames(rawHeaders).filter((n) => n === want).length;
}

/** Every value of a header (any case, `_` or `-`) in a raw header list. */
export function headerValues(rawHeaders: readonly string[], name: string): string[] {
  const want = name.toLowerCase().replaceAll('_', '-');
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase().replaceAll('_', '-') === want) out.push(rawHeaders[i + 1]!);
  return out;
}

/** What a raw TCP upstream received on one connection. */
export interface RawUpstreamConnection {
  received: Buffer;
  closed: boolean;
}

/** A TCP server that accepts, records what it receives, and calls `onData` (to reset, answer badly, …). */
export async function startRawUpstream(onData: (socket: Socket, received: Buffer, conn: RawUpstreamConnection) => void): Promise<{
  port: number;
  url: string;
  connections: RawUpstreamConnection[];
  close(): Promise<void>;
}> {
  const connections: RawUpstreamConnection[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    const conn: RawUpstreamConnection = { received: Buffer.alloc(0), closed: false };
    connections.push(conn);
    socket.on('error', () => {});
    socket.on('close', () => {
      conn.closed = true;
      sockets.delete(socket);
    });
    socket.on('data', (c: Buffer) => {
      conn.received = Buffer.concat([conn.received, c]);
      onData(socket, conn.received, conn);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    connections,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Per-request notes an upstream handler can keep: did the request end, was it aborted. */
export interface Tracked {
  url: string;
  ended: boolean;
  aborted: boolean;
  bodyBytes: number;
  trailers: string[];
}

/**
 * A recording upstream (servers.ts) that also tracks, per request, whether the
 * body ended and whether the connection went away before the response was sent.
 * The handler gets the unread request (stream mode).
 */
export async function startTrackingUpstream(
  handler: (req: IncomingMessage, res: ServerResponse, t: Tracked) => void,
): Promise<Upstream & { tracked: Tracked[] }> {
  const tracked: Tracked[] = [];
  const up = await startUpstream(
    (req, res) => {
      const t: Tracked = { url: req.url!, ended: false, aborted: false, bodyBytes: 0, trailers: [] };
      tracked.push(t);
      req.on('data', (c: Buffer) => (t.bodyBytes += c.length));
      req.on('end', () => {
        t.ended = true;
        t.trailers = req.rawTrailers;
      });
      res.on('close', () => {
        if (!res.writableFinished) t.aborted = true;
      });
      handler(req, res, t);
    },
    { stream: true },
  );
  return Object.assign(up, { tracked });
}

/** Peak resident set size (VmHWM) of a process, in bytes. */
export function peakRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** Current resident set size (VmRSS) of a process, in bytes. */
export function currentRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/**
 * A slow client: sends `head` on a fresh connection, then one body byte every
 * `everyMs` until `stop()` (or the proxy closes the connection).
 */
export async function trickleUpload(port: number, head: string, everyMs: number): Promise<{ conn: RawConnection; stop(): void }> {
  const conn = await RawConnection.open(port);
  await conn.write(head);
  const timer = setInterval(() => {
    if (conn.closed) clearInterval(timer);
    else void conn.write('x');
  }, everyMs);
  return {
    conn,
    stop: () => {
      clearInterval(timer);
      conn.destroy();
    },
  };
}
