/**
 * A real JWKS endpoint on 127.0.0.1, port 0, for JWT tests: publishes the
 * public halves of its keys, rotates them, can go down (connection refused),
 * hang, answer 500 or garbage, send a huge JWKS (streamed, with or without
 * Content-Length) or one with too many keys, and counts every request it
 * receives and the bytes a huge answer got onto the wire before the client
 * cut it off.
 * Plus real signing keys and a token minter (jose), so tests sign real tokens.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';

export type SigningAlg = 'RS256' | 'PS256' | 'ES256' | 'EdDSA' | 'Ed25519';

export interface SigningKey {
  readonly kid: string;
  readonly alg: SigningAlg;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  /** The public JWK as a JWKS publishes it (kid, alg, use). */
  readonly publicJwk: JWK;
}

export async function newSigningKey(alg: SigningAlg, kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, publicKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

export function publicPem(key: SigningKey): Promise<string> {
  return exportSPKI(key.publicKey);
}

export interface MintOptions {
  iss?: string;
  aud?: string | string[];
  /** Epoch seconds; null leaves `exp` out. */
  exp?: number | null;
  nbf?: number;
  iat?: number;
  /** Header kid: the key's by default, null to leave it out. */
  kid?: string | null;
}

/** Signs a real token with an asymmetric key or an HS256 secret. */
export function mint(key: SigningKey | { hs256: Uint8Array }, claims: JWTPayload, opts: MintOptions = {}): Promise<string> {
  const asym = 'privateKey' in key;
  const kid = opts.kid === undefined ? (asym ? key.kid : undefined) : (opts.kid ?? undefined);
  let jwt = new SignJWT(claims).setProtectedHeader({ alg: asym ? key.alg : 'HS256', typ: 'JWT', ...(kid === undefined ? {} : { kid }) });
  if (opts.iss !== undefined) jwt = jwt.setIssuer(opts.iss);
  if (opts.aud !== undefined) jwt = jwt.setAudience(opts.aud);
  if (opts.iat !== undefined) jwt = jwt.setIssuedAt(opts.iat);
  if (opts.exp !== undefined && opts.exp !== null) jwt = jwt.setExpirationTime(opts.exp);
  if (opts.nbf !== undefined) jwt = jwt.setNotBefore(opts.nbf);
  return jwt.sign(asym ? key.privateKey : key.hs256);
}

/** How the endpoint answers while it is up. */
export type JwksMode = 'ok' | 'hang' | 'error' | 'garbage' | 'huge';

/** In `huge` mode: a valid JWKS (the published keys) padded to `bytes`, written in 64 KB chunks as the socket drains. */
export interface HugeAnswer {
  bytes: number;
  /** Send Content-Length (a client can refuse it unread), or stream it chunked. */
  declareLength: boolean;
}

export class JwksServer {
  /** Requests received (any mode). */
  fetches = 0;
  mode: JwksMode = 'ok';
  huge: HugeAnswer = { bytes: 64 * 1024 * 1024, declareLength: false };
  /** Bytes of the last `huge` answer the socket accepted (less than `huge.bytes` when the client hung up early). */
  hugeBytesSent = 0;
  /** In `ok` mode, this many extra public keys (copies of the first, under other kids) follow the real ones. */
  extraKeys = 0;
  /** The `issuer` its OpenID discovery document names (`/.well-known/openid-configuration`; 404 while null). */
  discoveryIssuer: string | null = null;
  /** Requests for the discovery document (also counted in {@link fetches}). */
  discoveryFetches = 0;
  private keys: SigningKey[] = [];
  private server: Server | null = null;
  private port = 0;
  private readonly hanging = new Set<ServerResponse>();

  static async start(keys: SigningKey[] = []): Promise<JwksServer> {
    const s = new JwksServer();
    s.keys = [...keys];
    await s.up();
    return s;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/.well-known/jwks.json`;
  }

  /** http://127.0.0.1:<port> */
  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get kids(): string[] {
    return this.keys.map((k) => k.kid);
  }

  publish(...keys: SigningKey[]): void {
    this.keys.push(...keys);
  }

  unpublish(kid: string): void {
    this.keys = this.keys.filter((k) => k.kid !== kid);
  }

  /** Key rotation: `next` is published and every older key withdrawn. */
  rotate(next: SigningKey): void {
    this.keys = [next];
  }

  /** Listens (again, on the same port after {@link down}). */
  async up(): Promise<void> {
    if (this.server !== null) return;
    const server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /** Stops listening: new connections are refused, open ones are cut. */
  async down(): Promise<void> {
    const server = this.server;
    if (server === null) return;
    this.server = null;
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.fetches++;
    req.resume();
    if (req.url === '/.well-known/openid-configuration' && this.mode === 'ok') {
      this.discoveryFetches++;
      if (this.discoveryIssuer === null) res.writeHead(404).end();
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer: this.discoveryIssuer, jwks_uri: this.url }));
      return;
    }
    switch (this.mode) {
      case 'hang':
        this.hanging.add(res);
        res.on('close', () => this.hanging.delete(res));
        return;
      case 'error':
        res.writeHead(500, { 'content-type': 'text/plain' }).end('boom');
        return;
      case 'garbage':
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys": not json');
        return;
      case 'huge':
        this.sendHuge(res);
        return;
      case 'ok': {
        const first = this.keys[0]?.publicJwk;
        const extra = first === undefined ? [] : Array.from({ length: this.extraKeys }, (_, i) => ({ ...first, kid: `extra-${i}` }));
        const body = JSON.stringify({ keys: [...this.keys.map((k) => k.publicJwk), ...extra] });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
      }
    }
  }

  private sendHuge(res: ServerResponse): void {
    const head = Buffer.from(`${JSON.stringify({ keys: this.keys.map((k) => k.publicJwk) }).slice(0, -1)},"pad":"`);
    const tail = Buffer.from('"}');
    const total = Math.max(this.huge.bytes, head.length + tail.length);
    const chunk = Buffer.alloc(64 * 1024, 'x');
    let left = total - head.length - tail.length;
    this.hugeBytesSent = 0;
    res.writeHead(200, { 'content-type': 'application/json', ...(this.huge.declareLength ? { 'content-length': total } : {}) });
    const write = (buf: Buffer): boolean => res.write(buf, (err) => (err ? undefined : (this.hugeBytesSent += buf.length)));
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          res.once('drain', pump);
          return;
        }
      }
      write(tail);
      res.end();
    };
    res.on('close', () => res.removeAllListeners('drain'));
    write(head);
    pump();
  }
}
