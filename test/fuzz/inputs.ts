/**
 * Fuzz inputs: one raw HTTP/1.x request per index, generated from the run's
 * seed. Credentials appear as `{{name}}` placeholders (`{{name~flip}}` for a
 * damaged one) and are replaced by real keys only on the wire, so a request
 * can be printed and replayed without a secret in sight.
 *
 * The shapes cover the request parser (request line, versions, framing,
 * header syntax), path normalisation and route matching (dot segments,
 * escapes, `;` and `%3B` path parameters, case), sanitize (identity headers
 * in every case, duplicated, `_`-spelt, Connection-nominated), the auth
 * header shapes and WebSocket upgrades.
 */
import { Rng } from './prng.js';
import { CREDENTIALS, GLOBEX_HOST, IDENTITY_HEADERS, ROUTES } from './world.js';

export interface FuzzRequest {
  readonly index: number;
  /** Its X-Request-ID: how the upstream's copy is told apart. */
  readonly id: string;
  readonly method: string;
  readonly upgrade: boolean;
  /** The bytes to send, with credential placeholders. */
  readonly text: string;
  /** Each Authorization / X-API-Key header Node will see, by the placeholder it holds (null: none, or garbage). */
  readonly credentials: readonly (string | null)[];
  /** The host the proxy routes on (absolute-form authority, else Host), as the route stage folds it. */
  readonly host: string;
}

const SPOOF = 'SPOOF';
export const HOP_VALUE = 'HOPVAL';
export const SPOOF_VALUE = SPOOF;

/** Each dimension of a request is plain most of the time and hostile now and then, so most requests get deep. */
const HOSTILE = 0.03;
const SEGMENTS = ['7', 'x', 'secret', 'SECRET', 'Secret', '..', '.', '', ';x', ';jsessionid=0', 'a;b', 'secret;x', 'secret;', 'secret%3Bx', 'secret%3bjsessionid=1', '%3B', '%2e%2e', '%2E', '%73ecret', 'sec%72et', '~u', '*', '%20', '%C3%A9'];
const HOSTILE_SEGMENTS = ['..;', '.;x', '%2F', '%2f', '%5C', '\\', '%00', '%', '%zz', 'caf\u00e9', 'a b', '..', '../..', '%2e%2e%2f'];
const BASES = ['/orders', '/orders', '/orders', '/orders/secret', '/orders/secret', '/public', '/public', '/nows', '/nows', '/strip', '/strip', '/hold', '/', '/nothing', '/orders-admin', '/ORDERS', '/Orders/Secret', '/strip/orders/secret'];
/** Upgrades go mostly where WebSocket matters: a `websocket: false` route (whose refusal must release its slot) and the others. */
const UPGRADE_BASES = ['/nows', '/nows', '/nows', '/orders', '/orders/secret', '/public', '/strip'];
/** Valid credentials more often than each kind of invalid one; `conc` (the concurrency-limited tenant) often. */
const CREDENTIAL_NAMES = ['acme', 'acme', 'acmeAll', 'acmeAll', 'conc', 'conc', 'conc', 'globex', 'jwtReader', 'jwtOwner', 'jwtOwner', ...Object.keys(CREDENTIALS)];
const QUERIES = ['', '', '', '', '?a=1', '?x=../secret', '?a=%zz', '?;x', '?a=1&a=2'];
const HOSTILE_QUERIES = ['#frag', '?a#b', '?\u0001'];
const METHODS = ['GET', 'GET', 'GET', 'GET', 'POST', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'];
const HOSTILE_METHODS = ['get', 'PRI', 'CONNECT', 'TRACE', 'FOO', 'G\u00c9T', '', 'GET GET'];
const VERSIONS = ['HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0'];
const HOSTILE_VERSIONS = ['HTTP/2.0', 'HTTP/1.2', 'http/1.1', '', 'HTTP/1.1 x', 'HTTP/0.9'];
const HOSTS = ['api.test', 'api.test', 'api.test', GLOBEX_HOST, GLOBEX_HOST, 'GLOBEX.TEST', `${GLOBEX_HOST}.`, `${GLOBEX_HOST}:8080`, `x.${GLOBEX_HOST}`, '[::1]:80'];
const HOSTILE_HOSTS = ['bad host', 'a/b', 'a@b', '', 'a b.test', `${GLOBEX_HOST}/x`, 'x:99999999'];
const SCHEMES = ['Bearer ', 'Bearer ', 'bearer ', 'BEARER ', 'Bearer  ', 'Basic ', 'Token ', '', 'Bearer\t'];
const DAMAGE = ['flip', 'cut', 'case', 'pad'];
const GARBAGE_CREDENTIALS = ['', 'tg_', 'tg_live_', 'tg_live_x_y', 'a.b.c', 'e30.e30.', 'x'.repeat(300), 'tg_live_ak_acme_1_\u00e9', '..', 'Bearer'];

/** Folds a host as the route stage does (lower case, no port, no trailing dot). */
export function foldHost(value: string): string {
  let h = value.startsWith('[') ? value.slice(0, value.indexOf(']') + 1) : value.split(':')[0]!;
  h = h.toLowerCase();
  return h.endsWith('.') ? h.slice(0, -1) : h;
}

function pick<T>(rng: Rng, plain: readonly T[], hostile: readonly T[]): T {
  return rng.chance(HOSTILE) ? rng.pick(hostile) : rng.pick(plain);
}

function path(rng: Rng, upgrade: boolean): string {
  let p = rng.pick(upgrade ? UPGRADE_BASES : BASES);
  const extra = rng.int(4);
  for (let i = 0; i < extra; i++) p += `/${pick(rng, SEGMENTS, HOSTILE_SEGMENTS)}`;
  if (rng.chance(0.1)) p = p.replace(/\//g, () => (rng.chance(0.2) ? '//' : '/'));
  if (rng.chance(0.05)) p = rng.mixCase(p);
  if (rng.chance(0.1)) p = p.replace(/[a-z]/, (c) => `%${c.charCodeAt(0).toString(16)}`);
  if (rng.chance(0.02)) p = p.replace(/^\//, '');
  return p + pick(rng, QUERIES, HOSTILE_QUERIES);
}

function target(rng: Rng, upgrade: boolean): { target: string; authority: string | null } {
  const roll = rng.int(60);
  if (roll === 0) return { target: '*', authority: null };
  if (roll === 1) return { target: '', authority: null };
  if (roll <= 4) {
    const authority = rng.pick(['api.test', GLOBEX_HOST, 'GLOBEX.test:1', 'x']);
    return { target: `${rng.pick(['http', 'https', 'HTTP'])}://${authority}${path(rng, upgrade).replace(/^(?!\/)/, '/')}`, authority };
  }
  return { target: path(rng, upgrade), authority: null };
}

/** An identity header name in one of its spellings: any case, `_` for `-`. */
function spelling(rng: Rng, name: string): string {
  let n = rng.chance(0.5) ? rng.mixCase(name) : name;
  if (rng.chance(0.3)) n = n.replaceAll('-', '_');
  return n;
}

/** A credential header's value; `placeholder` names what it proves (`~…`: damaged, proves nothing). */
function credentialValue(rng: Rng): { value: string; placeholder: string | null } {
  if (rng.chance(0.05)) return { value: rng.pick(GARBAGE_CREDENTIALS), placeholder: null };
  const name = rng.pick(CREDENTIAL_NAMES);
  const placeholder = rng.chance(0.1) ? `${name}~${rng.pick(DAMAGE)}` : name;
  // Node trims the whitespace around a header value; anything else around the key damages it.
  const before = rng.chance(0.05) ? ' ' : '';
  const after = rng.chance(0.08) ? rng.pick([' x', ',', ' ', ';']) : '';
  return { value: `${before}{{${placeholder}}}${after}`, placeholder: after.trim() === '' ? placeholder : `${placeholder}~extra` };
}

export function generate(seed: number, index: number): FuzzRequest {
  const rng = new Rng(seed, index);
  const id = `fz-${seed}-${index}`;
  const upgrade = rng.chance(0.12);
  const method = upgrade && rng.chance(0.85) ? 'GET' : pick(rng, METHODS, HOSTILE_METHODS);
  const { target: t, authority } = target(rng, upgrade);
  const version = pick(rng, VERSIONS, HOSTILE_VERSIONS);
  const headers: [string, string][] = [['X-Request-ID', id]];
  const credentials: (string | null)[] = [];

  const hostCount = rng.chance(0.02) ? 0 : rng.chance(0.02) ? 2 : 1;
  const hostValue = pick(rng, HOSTS, HOSTILE_HOSTS);
  for (let i = 0; i < hostCount; i++) headers.push([rng.chance(0.1) ? 'HOST' : 'Host', i === 0 ? hostValue : rng.pick(HOSTS)]);

  const credentialCount = rng.pick([0, 1, 1, 1, 1, 1, 1, 1, 1, 2]);
  for (let i = 0; i < credentialCount; i++) {
    const { value, placeholder } = credentialValue(rng);
    if (rng.chance(0.5)) {
      const name = rng.pick(['Authorization', 'Authorization', 'authorization', 'AUTHORIZATION', 'Authorization', 'Authorisation']);
      const scheme = rng.pick(SCHEMES);
      headers.push([name, scheme + value]);
      if (name.toLowerCase() === 'authorization') credentials.push(scheme.trim().toLowerCase() === 'bearer' ? placeholder : `${placeholder}~scheme`);
    } else {
      const name = rng.pick(['X-API-Key', 'X-API-Key', 'x-api-key', 'X-Api-Key', 'X_API_Key', 'X-API-Keys']);
      headers.push([name, value]);
      if (name.toLowerCase() === 'x-api-key') credentials.push(placeholder);
    }
  }

  // Spoofed identity headers: any case, duplicated, `_`-spelt. X-Request-ID only `_`-spelt (a second
  // `X-Request-ID` would merge with ours in Node and cost the request its identity in the check).
  const spoofs = rng.int(4);
  for (let i = 0; i < spoofs; i++) {
    const name = rng.pick(IDENTITY_HEADERS);
    let spelt = spelling(rng, name);
    if (name === 'x-request-id') spelt = spelt.replaceAll('-', '_');
    headers.push([spelt, `${SPOOF}-${rng.pick(['globex', 'acme', 'conc', '*', 'x y'])}`]);
  }

  // Connection: nominate hop headers and identity headers; the nominated ones must not reach the upstream.
  const connection: string[] = [];
  if (rng.chance(0.3)) connection.push(rng.pick(['close', 'keep-alive', 'Close']));
  if (rng.chance(0.25)) {
    const hop = rng.mixCase(`x-hop-${rng.int(3)}`);
    headers.push([rng.chance(0.2) ? hop.replaceAll('-', '_') : hop, HOP_VALUE]);
    connection.push(rng.chance(0.2) ? hop.replaceAll('-', '_') : hop);
  }
  if (rng.chance(0.2)) connection.push(spelling(rng, rng.pick(IDENTITY_HEADERS)));
  if (upgrade) {
    connection.push(rng.pick(['Upgrade', 'upgrade', 'UPGRADE']));
    headers.push(['Upgrade', rng.pick(['websocket', 'websocket', 'WebSocket', 'h2c', 'websocket, h2c'])]);
    if (rng.chance(0.9)) headers.push(['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ==']);
    headers.push(['Sec-WebSocket-Version', rng.pick(['13', '13', '8'])]);
  }
  if (connection.length > 0) headers.push([rng.chance(0.1) ? 'CONNECTION' : 'Connection', connection.join(rng.pick([', ', ',', ' , ']))]);

  if (rng.chance(0.05)) headers.push(['Expect', '100-continue']);
  if (rng.chance(0.02)) headers.push(['X-Long', 'y'.repeat(rng.pick([100, 9000, 20_000]))]);
  if (rng.chance(0.03)) headers.push(rng.pick<[string, string]>([['Bad Name', 'x'], ['X-Ctl', 'a\u0001b'], ['X-Fold', 'a\r\n b'], ['', 'no-name'], ['X-Nul', 'a\u0000b']]));
  if (rng.chance(0.05)) headers.push(['X-Forwarded-For', `${SPOOF}-1.2.3.4`]);
  if (rng.chance(0.05)) headers.push(['Forwarded', `for=${SPOOF}`]);

  const body = framing(rng, method, id, headers);
  const nl = rng.chance(0.01) ? '\n' : '\r\n';
  const line = `${method}${rng.chance(0.01) ? '  ' : ' '}${t}${version === '' ? '' : ` ${version}`}`;
  const text = `${line}${nl}${headers.map(([n, v]) => `${n}: ${v}`).join(nl)}${nl}${nl}${body}`;
  const firstHost = headers.find(([n]) => n.toLowerCase() === 'host')?.[1];
  return { index, id, method, upgrade, text, credentials, host: foldHost(authority ?? firstHost ?? '') };
}

/** A body, framed one of several ways (some of them the shapes request smuggling uses), and its headers. */
function framing(rng: Rng, method: string, id: string, headers: [string, string][]): string {
  if (!['POST', 'PUT', 'PATCH'].includes(method) && !rng.chance(0.05)) return '';
  // A request hidden in the body: if it ever reaches the upstream, the framing was read two ways.
  // No credential in it: the upstream checks none, so reaching it at all is the failure (and lengths stay exact).
  const hidden = `GET /orders/secret HTTP/1.1\r\nHost: api.test\r\nX-Request-ID: ${id}-smuggled\r\n\r\n`;
  const plain = rng.pick(['{"a":1}', 'x'.repeat(rng.int(200)), hidden]);
  switch (rng.chance(HOSTILE * 2) ? 4 + rng.int(4) : rng.int(4)) {
    case 0:
    case 1:
    case 2:
      headers.push(['Content-Length', String(Buffer.byteLength(plain))]);
      return plain;
    case 3:
      headers.push(['Transfer-Encoding', rng.pick(['chunked', 'Chunked'])]);
      return `${Buffer.byteLength(plain).toString(16)}\r\n${plain}\r\n0\r\n\r\n`;
    case 4:
      headers.push(['Content-Length', '0'], ['Transfer-Encoding', 'chunked']);
      return `0\r\n\r\n${hidden}`;
    case 5:
      headers.push(['Transfer-Encoding', rng.pick(['chunked, identity', 'xchunked', ' chunked', 'chunked\t', 'identity'])], ['Content-Length', String(hidden.length)]);
      return hidden;
    case 6:
      headers.push(['Transfer-Encoding', 'chunked']);
      return `${rng.pick(['zz', '-1', '1;ext=x', '0x5', 'ffffffffffffffffff'])}\r\nx\r\n0\r\n\r\n`;
    default:
      headers.push(['Content-Length', String(plain.length)], ['Content-Length', String(plain.length + rng.int(3))]);
      return plain;
  }
}

/** The request's bytes with real credentials in place of the placeholders. */
export function render(req: FuzzRequest, secrets: ReadonlyMap<string, string>): Buffer {
  const text = req.text.replace(/\{\{([A-Za-z]+)(?:~([a-z]+))?\}\}/g, (_m, name: string, damage: string | undefined) => {
    const real = secrets.get(name)!;
    switch (damage) {
      case 'flip': {
        // A character well inside: the last one of a base64url signature may carry only padding bits.
        const i = real.length - 8;
        return real.slice(0, i) + (real[i] === 'a' ? 'b' : 'a') + real.slice(i + 1);
      }
      case 'cut':
        return real.slice(0, -5);
      case 'case':
        return real.toUpperCase() === real ? real.toLowerCase() : real.toUpperCase();
      case 'pad':
        return `${real}=`;
      default:
        return real;
    }
  });
  return Buffer.from(text, 'latin1');
}

export const ROUTE_NAMES = ROUTES.map((r) => r.name);
