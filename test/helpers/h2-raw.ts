/**
 * A raw HTTP/2 client for requests no client library sends (Node's http2
 * client refuses unknown pseudo-headers, connection-specific headers and
 * upper-case names before they leave): the h2c preface, SETTINGS, and
 * HEADERS frames whose header block is HPACK literals (no Huffman, no
 * indexing), written by hand. It reads frames back, without decoding their
 * header blocks: tests look at frame types, stream ids and error codes.
 */
import { connect, type Socket } from 'node:net';

export const FRAME = { data: 0, headers: 1, rstStream: 3, settings: 4, ping: 6, goaway: 7, windowUpdate: 8 } as const;
export const H2_ERROR = { noError: 0, protocolError: 1, refusedStream: 7, cancel: 8, enhanceYourCalm: 11 } as const;

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1). */
function hpackInt(value: number, prefixBits: number, firstByteFlags = 0): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByteFlags | value]);
  const out = [firstByteFlags | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Buffer.from(out);
}

/** A header block of "literal header field without indexing — new name" entries, in the order given. */
export function headerBlock(headers: readonly (readonly [string, string])[]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of headers) {
    const n = Buffer.from(name, 'latin1');
    const v = Buffer.from(value, 'latin1');
    parts.push(Buffer.from([0x00]), hpackInt(n.length, 7), n, hpackInt(v.length, 7), v);
  }
  return Buffer.concat(parts);
}

export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

export class RawH2 {
  readonly socket: Socket;
  readonly frames: Frame[] = [];
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.on('error', () => {});
    this.socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      while (this.buf.length >= 9) {
        const len = this.buf.readUIntBE(0, 3);
        if (this.buf.length < 9 + len) break;
        const f: Frame = { type: this.buf[3]!, flags: this.buf[4]!, stream: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + len) };
        this.buf = this.buf.subarray(9 + len);
        // Acknowledge the server's SETTINGS, as any client must.
        if (f.type === FRAME.settings && (f.flags & 1) === 0) this.socket.write(frame(FRAME.settings, 1, 0));
        this.frames.push(f);
      }
      this.wake();
    });
    this.socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  /** Connects, sends the preface and an empty SETTINGS frame. */
  static async open(port: number): Promise<RawH2> {
    const c = new RawH2(port);
    await new Promise<void>((resolve, reject) => {
      c.socket.once('connect', resolve);
      c.socket.once('error', reject);
    });
    c.socket.write(Buffer.concat([PREFACE, frame(FRAME.settings, 0, 0)]));
    return c;
  }

  /** Waits for the server's SETTINGS (acknowledged at once): requests sent after this are under its limits. */
  async settings(timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.frames.some((f) => f.type === FRAME.settings && (f.flags & 1) === 0) && !this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** A request: HEADERS with END_HEADERS, and END_STREAM unless `endStream` is false. */
  request(stream: number, headers: readonly (readonly [string, string])[], endStream = true): void {
    this.socket.write(frame(FRAME.headers, 0x4 | (endStream ? 0x1 : 0), stream, headerBlock(headers)));
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The first frame on `stream` that answers it (HEADERS or RST_STREAM), or a GOAWAY; null if the connection closed or timed out first. */
  async answer(stream: number, timeoutMs = 5_000): Promise<Frame | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.find((x) => (x.stream === stream && (x.type === FRAME.headers || x.type === FRAME.rstStream)) || x.type === FRAME.goaway);
      if (f !== undefined) return f;
      const left = deadline - Date.now();
      if (this.closed || left <= 0) return null;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The error code of a RST_STREAM or GOAWAY frame. */
export function errorCodeOf(f: Frame): number {
  return f.type === FRAME.goaway ? f.payload.readUInt32BE(4) : f.payload.readUInt32BE(0);
}

/** HPACK's static table `:status` entries (RFC 7541 Appendix A), by index. */
const STATIC_STATUS: Record<number, number> = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 };
/** HPACK Huffman codes of the ten digits (RFC 7541 Appendix B): enough to read a status. */
const DIGIT_CODES: [string, string][] = [
  ['00000', '0'], ['00001', '1'], ['00010', '2'], ['011001', '3'], ['011010', '4'],
  ['011011', '5'], ['011100', '6'], ['011101', '7'], ['011110', '8'], ['011111', '9'],
];

function huffmanDigits(bytes: Buffer): string {
  let bits = [...bytes].map((b) => b.toString(2).padStart(8, '0')).join('');
  let out = '';
  for (;;) {
    const hit = DIGIT_CODES.find(([code]) => bits.startsWith(code));
    if (hit === undefined) break;
    out += hit[1];
    bits = bits.slice(hit[0].length);
  }
  if (!/^1{0,7}$/.test(bits)) throw new Error('not a Huffman-coded status');
  return out;
}

/**
 * The `:status` of a response HEADERS frame: the first field of its block
 * (RFC 9113 puts pseudo-headers first), indexed from the static table or a
 * literal with the static name `:status`.
 */
export function statusOf(f: Frame): number {
  const b = f.payload;
  const first = b[0]!;
  if (first & 0x80) return STATIC_STATUS[first & 0x7f] ?? NaN;
  const nameIndex = first & 0x40 ? first & 0x3f : first & 0x0f;
  if (nameIndex < 8 || nameIndex > 14) return NaN;
  const len = b[1]! & 0x7f;
  const value = b.subarray(2, 2 + len);
  return Number(b[1]! & 0x80 ? huffmanDigits(value) : value.toString('latin1'));
}
