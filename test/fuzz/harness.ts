/**
 * The fuzzed system, all real and on loopback: a recording upstream (HTTP and
 * WebSocket upgrades), the proxy as a child process (`dist/main.js serve`)
 * configured from ./world.ts, and a raw-socket client that sends each
 * generated request on its own connection and reads one response.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { SignJWT } from 'jose';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { spawnProxy, type SpawnedProxy } from '../helpers/servers.js';
import { CONC_TENANT, CONCURRENCY, GLOBEX_HOST, ROUTE_BASE, ROUTES } from './world.js';

export interface UpstreamRecord {
  method: string;
  url: string;
  rawHeaders: string[];
  upgrade: boolean;
}

export interface ClientAnswer {
  /** Null when the connection closed (or timed out) before a status line. */
  status: number | null;
  headers: Map<string, string>;
  body: string;
  /** No complete answer and no close within the bound. */
  hung: boolean;
}

const JWT_ISSUER = 'https://fuzz.test/';
const JWT_SECRET = 'fuzz-hs256-secret-0123456789-abcdefghij';
/** Requests carrying this header (and only the post-run check sends it) are held by the upstream until released. */
export const HOLD_HEADER = 'x-fz-hold';

export class FuzzWorld {
  /** Upstream requests by the X-Request-ID the proxy set (several values, if it ever set several). */
  readonly byId = new Map<string, UpstreamRecord[]>();
  readonly held: ServerResponse[] = [];
  /** Upstream ends of WebSocket tunnels not yet closed. */
  readonly tunnels = new Set<Socket>();
  private readonly holdToken = createHash('sha256').update(String(process.hrtime.bigint())).digest('hex').slice(0, 16);

  private constructor(
    readonly proxy: SpawnedProxy,
    private readonly upstream: Server,
    /** Credential name → the real key or token (never printed). */
    readonly secrets: Map<string, string>,
  ) {}

  static async start(): Promise<FuzzWorld> {
    const secrets = new Map<string, string>();
    const keys = {
      acme: generateApiKey({ env: 'live', id: 'ak_acme' }),
      acmeAll: generateApiKey({ env: 'live', id: 'ak_acme_all' }),
      conc: generateApiKey({ env: 'live', id: 'ak_conc' }),
      globex: generateApiKey({ env: 'live', id: 'ak_globex' }),
      revoked: generateApiKey({ env: 'live', id: 'ak_revoked' }),
      unknownKey: generateApiKey({ env: 'live', id: 'ak_nobody' }),
    };
    for (const [name, k] of Object.entries(keys)) secrets.set(name, k.key);
    const now = Math.floor(Date.now() / 1000);
    const hs = new TextEncoder().encode(JWT_SECRET);
    const token = (claims: Record<string, unknown>, exp: number, key = hs) =>
      new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuer(JWT_ISSUER).setAudience('fuzz').setExpirationTime(exp).sign(key);
    secrets.set('jwtReader', await token({ tid: 'acme', sub: 'reader', roles: ['reader'] }, now + 3600));
    secrets.set('jwtOwner', await token({ tid: 'acme', sub: 'owner', roles: ['owner'] }, now + 3600));
    secrets.set('jwtExpired', await token({ tid: 'acme', sub: 'old', roles: ['owner'] }, now - 3600));
    secrets.set('jwtForged', await token({ tid: 'acme', sub: 'forger', roles: ['owner'] }, now + 3600, new TextEncoder().encode(`${JWT_SECRET}-not`)));
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    secrets.set('jwtNone', `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: JWT_ISSUER, aud: 'fuzz', tid: 'acme', roles: ['owner'], exp: now + 3600 })}.`);

    let world: FuzzWorld | null = null;
    const upstream = createServer((req, res) => world!.onRequest(req, res));
    upstream.on('upgrade', (req: IncomingMessage, socket: Socket) => world!.onUpgrade(req, socket));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const port = (upstream.address() as AddressInfo).port;
    const route = (r: (typeof ROUTES)[number]) =>
      `  - { name: ${r.name}, match: { pathPrefix: "${r.prefix}" }, upstream: "http://127.0.0.1:${port}${ROUTE_BASE}${r.name}", ` +
      `auth: ${r.permission === null ? '[none]' : '[apiKey, jwt]'}${r.permission === null ? '' : `, permission: "${r.permission}"`}, ` +
      `stripPrefix: ${r.stripPrefix}, websocket: ${r.websocket}, timeoutMs: 3000 }`;
    const yaml = `
logging: { level: info, sample2xx: 0 }
routing: { caseInsensitive: true }
plans:
  open: { rate: null, quota: null, concurrency: null }
  limited: { rate: null, quota: null, concurrency: ${CONCURRENCY} }
tenants:
  - { id: acme, plan: open }
  - { id: ${CONC_TENANT}, plan: limited }
  - { id: globex, plan: open, hosts: [${GLOBEX_HOST}] }
apiKeys:
  - { id: ak_acme, tenant: acme, hash: "${keys.acme.hash}", scopes: [orders:read] }
  - { id: ak_acme_all, tenant: acme, hash: "${keys.acmeAll.hash}", scopes: ["*"] }
  - { id: ak_conc, tenant: ${CONC_TENANT}, hash: "${keys.conc.hash}", scopes: ["*"] }
  - { id: ak_globex, tenant: globex, hash: "${keys.globex.hash}", scopes: ["*"] }
  - { id: ak_revoked, tenant: acme, hash: "${keys.revoked.hash}", scopes: ["*"], revoked: true }
jwt:
  issuers:
    - { issuer: "${JWT_ISSUER}", audience: fuzz, secret: "${JWT_SECRET}", algorithms: [HS256] }
roles: { reader: [orders:read], owner: ["*"] }
routes:
${ROUTES.map(route).join('\n')}
`;
    const proxy = await spawnProxy(yaml);
    // A run cut short (a timeout, a killed worker) must not leave the proxy behind.
    process.once('exit', () => proxy.child.kill('SIGKILL'));
    world = new FuzzWorld(proxy, upstream, secrets);
    return world;
  }

  private record(req: IncomingMessage, upgrade: boolean): void {
    const ids = req.headers['x-request-id'];
    const id = Array.isArray(ids) ? ids.join(',') : (ids ?? '');
    const list = this.byId.get(id) ?? [];
    list.push({ method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, upgrade });
    this.byId.set(id, list);
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    this.record(req, false);
    req.resume();
    req.on('end', () => {
      if (req.headers[HOLD_HEADER] === this.holdToken) {
        this.held.push(res);
        return;
      }
      const body = '{"ok":true}';
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length, 'x-fz-upstream': '1' }).end(body);
    });
  }

  private onUpgrade(req: IncomingMessage, socket: Socket): void {
    this.record(req, true);
    this.tunnels.add(socket);
    socket.on('close', () => this.tunnels.delete(socket));
    socket.on('error', () => socket.destroy());
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key'] ?? ''}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.end(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nX-Fz-Upstream: 1\r\n\r\n`);
  }

  /** A request the upstream will hold until {@link releaseHeld}: for the concurrency check after a run. */
  holdRequest(n: number): Buffer {
    const key = this.secrets.get('conc')!;
    return Buffer.from(`GET /hold/check-${n} HTTP/1.1\r\nHost: api.test\r\nX-Request-ID: hold-${n}\r\nX-API-Key: ${key}\r\n${HOLD_HEADER}: ${this.holdToken}\r\nConnection: close\r\n\r\n`);
  }

  releaseHeld(): void {
    for (const res of this.held.splice(0)) res.writeHead(200, { 'content-length': 0 }).end();
  }

  async close(): Promise<void> {
    this.releaseHeld();
    const exited = this.proxy.stop();
    // Bounded: a proxy that cannot drain is killed (the run's violations are already collected).
    const kill = setTimeout(() => this.proxy.child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(kill);
    for (const s of this.tunnels) s.destroy();
    this.upstream.closeAllConnections();
    await new Promise<void>((resolve) => this.upstream.close(() => resolve()));
  }
}

/** Sends `bytes` on a new connection and reads ONE response (1xx interim ones skipped); gives up after `waitMs`. */
export function exchange(port: number, bytes: Buffer, head: boolean, waitMs = 8000): Promise<ClientAnswer> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let settled = false;
    const finish = (answer: ClientAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => finish({ ...(parse(buf, head, true) ?? { status: null, headers: new Map(), body: '' }), hung: true }), waitMs);
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const done = parse(buf, head, false);
      if (done !== null) finish({ ...done, hung: false });
    });
    socket.on('error', () => {});
    socket.on('close', () => finish({ ...(parse(buf, head, true) ?? { status: null, headers: new Map(), body: '' }), hung: false }));
    socket.write(bytes);
  });
}

type Parsed = Omit<ClientAnswer, 'hung'>;

/** One complete response from `buf`, or null while it is incomplete (`closed`: take what there is). */
function parse(buf: Buffer, head: boolean, closed: boolean): Parsed | null {
  let start = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', start);
    if (end === -1) return null;
    const lines = buf.subarray(start, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(lines[0]!)?.[1] ?? NaN);
    if (Number.isNaN(status)) return closed ? { status: null, headers: new Map(), body: buf.toString('latin1') } : null;
    const headers = new Map<string, string>();
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
    }
    if (status >= 100 && status < 200 && status !== 101) {
      start = end + 4;
      continue;
    }
    const rest = buf.subarray(end + 4);
    if (status === 101 || head || status === 204 || status === 304) return { status, headers, body: '' };
    const length = headers.get('content-length');
    if (length !== undefined) return rest.length >= Number(length) ? { status, headers, body: rest.subarray(0, Number(length)).toString('utf8') } : closed ? { status, headers, body: rest.toString('utf8') } : null;
    if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
      const text = rest.toString('latin1');
      return text.includes('\r\n0\r\n\r\n') || text.startsWith('0\r\n\r\n') || closed ? { status, headers, body: dechunk(text) } : null;
    }
    return closed ? { status, headers, body: rest.toString('utf8') } : null;
  }
}

function dechunk(text: string): string {
  let out = '';
  let rest = text;
  for (;;) {
    const nl = rest.indexOf('\r\n');
    const size = parseInt(rest.slice(0, nl), 16);
    if (!(size > 0)) return out;
    out += rest.slice(nl + 2, nl + 2 + size);
    rest = rest.slice(nl + 2 + size + 2);
  }
}
