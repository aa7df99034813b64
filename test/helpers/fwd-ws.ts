/**
 * A minimal RFC 6455 WebSocket upstream and client frame codec, written by
 * hand with node:crypto and node:http's 'upgrade' event (no ws library): the
 * handshake (Sec-WebSocket-Accept), masked/unmasked frames with 7-, 16- and
 * 64-bit lengths, an echo of every text/binary frame, and a close handshake.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { RawConnection } from './fwd-net.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export const OP = { text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

export function acceptFor(key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64');
}

export function newKey(): string {
  return randomBytes(16).toString('base64');
}

/** One final frame; masked (client → server) when `mask` is true. */
export function encodeFrame(payload: Buffer | string, opcode: number = OP.text, mask = true): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const len = data.length;
  let head: Buffer;
  if (len < 126) {
    head = Buffer.from([0x80 | opcode, (mask ? 0x80 : 0) | len]);
  } else if (len < 65536) {
    head = Buffer.alloc(4);
    head[0] = 0x80 | opcode;
    head[1] = (mask ? 0x80 : 0) | 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | opcode;
    head[1] = (mask ? 0x80 : 0) | 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  if (!mask) return Buffer.concat([head, data]);
  const key = randomBytes(4);
  const masked = Buffer.alloc(len);
  for (let i = 0; i < len; i++) masked[i] = data[i]! ^ key[i & 3]!;
  return Buffer.concat([head, key, masked]);
}

export interface Frame {
  fin: boolean;
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

/** Decodes one frame from the start of `buf`; null when incomplete. */
export function decodeFrame(buf: Buffer): { frame: Frame; used: number } | null {
  if (buf.length < 2) return null;
  const fin = (buf[0]! & 0x80) !== 0;
  const opcode = buf[0]! & 0x0f;
  const masked = (buf[1]! & 0x80) !== 0;
  let len = buf[1]! & 0x7f;
  let pos = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    pos = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    len = Number(buf.readBigUInt64BE(2));
    pos = 10;
  }
  let key: Buffer | null = null;
  if (masked) {
    if (buf.length < pos + 4) return null;
    key = buf.subarray(pos, pos + 4);
    pos += 4;
  }
  if (buf.length < pos + len) return null;
  const payload = Buffer.from(buf.subarray(pos, pos + len));
  if (key) for (let i = 0; i < len; i++) payload[i]! ^= key[i & 3]!;
  return { frame: { fin, opcode, masked, payload }, used: pos + len };
}

/** Reads the next frame from a raw client connection (after the 101). */
export async function readFrame(conn: RawConnection, timeoutMs = 10_000): Promise<Frame | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = decodeFrame(conn.pending);
    if (got !== null) {
      await conn.readBytes(got.used, 0);
      return got.frame;
    }
    if (conn.closed || Date.now() > deadline) return null;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The upgrade request as the WebSocket upstream received it, and what happened on the tunnel. */
export interface RecordedUpgrade {
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  /** Frames received from the proxy (unmasked payloads). */
  frames: Frame[];
  /** The proxy ended its side of the tunnel (FIN). */
  ended: boolean;
  closed: boolean;
  socket: Socket;
}

export interface WsUpstream {
  port: number;
  url: string;
  upgrades: RecordedUpgrade[];
  /** Plain (non-upgrade) HTTP requests it received. */
  plainRequests: number;
  close(): Promise<void>;
}

/**
 * A WebSocket server: answers every valid upgrade with 101 (plus `X-Upstream: ws`),
 * sends "hello from upstream" first when the path contains `greet`, echoes every
 * text/binary frame as an unmasked frame prefixed with "echo:" (text) or as is
 * (binary), answers a close with a close.
 *
 * `ignoreEnd`: a careless server that never closes its side when the proxy
 * ends its own, and keeps sending a ping every 100 ms (so a socket the proxy
 * really closed shows up as an error here).
 */
export async function startWsUpstream(opts: { ignoreEnd?: boolean } = {}): Promise<WsUpstream> {
  const upgrades: RecordedUpgrade[] = [];
  const sockets = new Set<Socket>();
  const up: WsUpstream = { port: 0, url: '', upgrades, plainRequests: 0, close: async () => {} };
  const server = createServer((_req, res) => {
    up.plainRequests++;
    res.writeHead(426, { 'content-type': 'text/plain' });
    res.end('upgrade required');
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    sockets.add(socket);
    const rec: RecordedUpgrade = { url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, frames: [], ended: false, closed: false, socket };
    upgrades.push(rec);
    socket.on('error', () => {});
    // http.Server sockets are half-open: like a real WebSocket server, close when the peer ends.
    let pinger: NodeJS.Timeout | undefined;
    socket.on('end', () => {
      rec.ended = true;
      if (!opts.ignoreEnd) socket.end();
      else pinger = setInterval(() => socket.write(encodeFrame('', OP.ping, false)), 100);
    });
    socket.on('close', () => {
      clearInterval(pinger);
      rec.closed = true;
      sockets.delete(socket);
    });
    const key = req.headers['sec-websocket-key'];
    if (typeof key !== 'string' || req.headers.upgrade?.toLowerCase() !== 'websocket') {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${acceptFor(key)}\r\nX-Upstream: ws\r\n\r\n`,
    );
    if (req.url!.includes('greet')) socket.write(encodeFrame('hello from upstream', OP.text, false));
    let buf = head.length > 0 ? Buffer.from(head) : Buffer.alloc(0);
    const drain = () => {
      for (;;) {
        const got = decodeFrame(buf);
        if (got === null) return;
        buf = buf.subarray(got.used);
        const f = got.frame;
        rec.frames.push(f);
        if (f.opcode === OP.text) socket.write(encodeFrame(Buffer.concat([Buffer.from('echo:'), f.payload]), OP.text, false));
        else if (f.opcode === OP.binary) socket.write(encodeFrame(f.payload, OP.binary, false));
        else if (f.opcode === OP.ping) socket.write(encodeFrame(f.payload, OP.pong, false));
        else if (f.opcode === OP.close) {
          socket.end(encodeFrame(f.payload, OP.close, false));
          return;
        }
      }
    };
    socket.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      drain();
    });
    drain();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  up.port = (server.address() as AddressInfo).port;
  up.url = `http://127.0.0.1:${up.port}`;
  up.close = () =>
    new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return up;
}

/** The bytes of a client upgrade request. */
export function upgradeRequest(path: string, key: string, extra = '', host = 'x'): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;
}
