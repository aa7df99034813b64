/**
 * Sanitize, end to end: no client-supplied identity header (SPEC §5) reaches
 * the upstream, whatever its case, repetition or `_` spelling, on plain,
 * chunked (trailers too) and 100-continue requests; configured header names
 * are stripped as well; `Connection:` can remove the client's own headers but
 * never one the proxy injects; credentials are removed unless the route
 * forwards them. Assertions look at the raw header list the upstream received.
 */
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { countHeader, headerNames, headerValues, RawConnection, rawExchange, send, startTrackingUpstream, type Tracked } from '../helpers/fwd-net.js';
import { startProxy, startUpstream, type RecordedRequest, type RunningProxy, type Upstream } from '../helpers/servers.js';

const IDENTITY = ['X-Tenant-ID', 'X-Tenant-Plan', 'X-Project-ID', 'X-Api-Key-ID', 'X-Subject', 'X-Scopes', 'X-Roles', 'X-Tenant-Assertion'];
const ASSERTION_SECRET = 'sanitize-assertion-secret-0123456789abcdef';
const key = generateApiKey({ env: 'live', id: 'ak_acme_1' });

/** Every spelling a client might try for one header name, each sent twice. */
function spellings(name: string): string[] {
  const lower = name.toLowerCase();
  const upper = name.toUpperCase();
  const mixed = [...lower].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join('');
  const underscored = name.replaceAll('-', '_');
  const halfUnderscored = name.replace('-', '_');
  return [name, name, lower, upper, mixed, underscored, underscored.toLowerCase(), halfUnderscored];
}

function spoofLines(names: readonly string[], marker: string): string {
  return names.flatMap((n) => spellings(n).map((s, i) => `${s}: ${marker}-${i}\r\n`)).join('');
}

/** No header of the list is there in any spelling, and no spoofed value leaked under another name. */
function expectNoneOf(rec: RecordedRequest, names: readonly string[], marker: string): void {
  const seen = headerNames(rec.rawHeaders);
  for (const n of names) expect(seen, `${n} reached the upstream`).not.toContain(n.toLowerCase());
  expect(rec.rawHeaders.join('\n')).not.toContain(marker);
}

let upstream: Upstream;
let tracking: Upstream & { tracked: Tracked[] };
let proxy: RunningProxy;

beforeAll(async () => {
  upstream = await startUpstream();
  tracking = await startTrackingUpstream((_req, res, t) => {
    // Answer once the body (and its trailers) has been read.
    const finish = () => res.end(JSON.stringify({ bytes: t.bodyBytes, trailers: t.trailers }));
    if (t.ended) finish();
    else _req.on('end', finish);
  });
  proxy = await startProxy(`
plans:
  pro: { rate: null }
tenants:
  - { id: acme, plan: pro }
apiKeys:
  - { id: ak_acme_1, tenant: acme, project: web, hash: "${key.hash}", scopes: [orders:read, orders:write] }
identity:
  assertion: { secret: "${ASSERTION_SECRET}", ttlSec: 60 }
routes:
  - { name: public, match: { pathPrefix: /public }, upstream: "${upstream.url}", auth: [none] }
  - { name: creds, match: { pathPrefix: /creds }, upstream: "${upstream.url}", auth: [none], forwardCredentials: true }
  - { name: keyed, match: { pathPrefix: /keyed }, upstream: "${upstream.url}", auth: [apiKey] }
  - { name: keyed-creds, match: { pathPrefix: /keyed-creds }, upstream: "${upstream.url}", auth: [apiKey], forwardCredentials: true }
  - { name: trailers, match: { pathPrefix: /trailers }, upstream: "${tracking.url}", auth: [none] }
`);
});

afterAll(async () => {
  await proxy?.close();
  await upstream?.close();
  await tracking?.close();
});

beforeEach(() => {
  upstream.requests.length = 0;
});

function only(): RecordedRequest {
  expect(upstream.requests).toHaveLength(1);
  return upstream.requests[0]!;
}

describe('identity headers sent by the client never reach the upstream', () => {
  it.each(IDENTITY)('%s in every case, duplicated, and in the _ spelling (public route)', async (name) => {
    const res = await rawExchange(proxy.port, `GET /public/one HTTP/1.1\r\nHost: x\r\n${spoofLines([name], 'spoofed')}Connection: close\r\n\r\n`);
    expect(res!.status).toBe(200);
    expectNoneOf(only(), [name], 'spoofed');
  });

  it('all of them at once, on a public route: the upstream sees no identity at all', async () => {
    const res = await rawExchange(proxy.port, `GET /public/all HTTP/1.1\r\nHost: x\r\n${spoofLines(IDENTITY, 'spoofed')}Connection: close\r\n\r\n`);
    expect(res!.status).toBe(200);
    expectNoneOf(only(), IDENTITY, 'spoofed');
  });

  it('on an authenticated route the upstream sees exactly the identity the proxy set, once each', async () => {
    const res = await rawExchange(
      proxy.port,
      `GET /keyed/me HTTP/1.1\r\nHost: x\r\nX-API-Key: ${key.key}\r\n${spoofLines(IDENTITY, 'spoofed')}Connection: close\r\n\r\n`,
    );
    expect(res!.status).toBe(200);
    const rec = only();
    expect(rec.rawHeaders.join('\n')).not.toContain('spoofed');
    expect(headerValues(rec.rawHeaders, 'x-tenant-id')).toEqual(['acme']);
    expect(headerValues(rec.rawHeaders, 'x-tenant-plan')).toEqual(['pro']);
    expect(headerValues(rec.rawHeaders, 'x-project-id')).toEqual(['web']);
    expect(headerValues(rec.rawHeaders, 'x-api-key-id')).toEqual(['ak_acme_1']);
    expect(headerValues(rec.rawHeaders, 'x-scopes')).toEqual(['orders:read orders:write']);
    // An API key has no subject and no roles: none is invented, and the client's are gone.
    expect(countHeader(rec.rawHeaders, 'x-subject')).toBe(0);
    expect(countHeader(rec.rawHeaders, 'x-roles')).toBe(0);
    // The assertion is the proxy's own, signed with the configured secret.
    const [assertion] = headerValues(rec.rawHeaders, 'x-tenant-assertion');
    expect(headerValues(rec.rawHeaders, 'x-tenant-assertion')).toHaveLength(1);
    const [h, p, sig] = assertion!.split('.');
    expect(createHmac('sha256', ASSERTION_SECRET).update(`${h}.${p}`).digest('base64url')).toBe(sig);
    expect(JSON.parse(Buffer.from(p!, 'base64url').toString())).toMatchObject({ tid: 'acme', kid: 'ak_acme_1' });
    // The credential itself is not forwarded on this route.
    expect(countHeader(rec.rawHeaders, 'x-api-key')).toBe(0);
  });

  it('X-Request-ID in the _ spelling is dropped; the upstream gets one fresh id', async () => {
    const res = await rawExchange(proxy.port, 'GET /public/rid HTTP/1.1\r\nHost: x\r\nX_Request_ID: spoofed-rid\r\nx_request_id: spoofed-rid2\r\nConnection: close\r\n\r\n');
    expect(res!.status).toBe(200);
    const rec = only();
    expect(headerValues(rec.rawHeaders, 'x-request-id')).toEqual([res!.headers['x-request-id']]);
    expect(rec.rawHeaders.join('\n')).not.toContain('spoofed');
  });

  it('a header name with a space before the colon is refused or dropped, never forwarded', async () => {
    const res = await rawExchange(proxy.port, 'GET /public/space HTTP/1.1\r\nHost: x\r\nX-Tenant-ID : spoofed\r\nConnection: close\r\n\r\n');
    if (res!.status === 400) expect(upstream.requests).toHaveLength(0);
    else expectNoneOf(only(), ['X-Tenant-ID'], 'spoofed');
  });
});

describe('configured identity header names', () => {
  let custom: RunningProxy;
  beforeAll(async () => {
    custom = await startProxy(`
plans:
  pro: { rate: null }
tenants:
  - { id: acme, plan: pro }
apiKeys:
  - { id: ak_acme_1, tenant: acme, hash: "${key.hash}", scopes: [orders:read] }
identity:
  headers: { tenantId: X-Org, scopes: X-Perms, requestId: X-Correlation-ID }
  assertion: { header: X-Org-Proof }
routes:
  - { name: public, match: { pathPrefix: /public }, upstream: "${upstream.url}", auth: [none] }
  - { name: keyed, match: { pathPrefix: /keyed }, upstream: "${upstream.url}", auth: [apiKey] }
`);
  });
  afterAll(async () => custom?.close());

  it('the custom names are stripped in every spelling', async () => {
    const res = await rawExchange(custom.port, `GET /public/c HTTP/1.1\r\nHost: x\r\n${spoofLines(['X-Org', 'X-Perms', 'X-Org-Proof'], 'spoofed')}Connection: close\r\n\r\n`);
    expect(res!.status).toBe(200);
    expectNoneOf(only(), ['X-Org', 'X-Perms', 'X-Org-Proof'], 'spoofed');
  });

  it('with a key, the custom names carry the proxy values only, once', async () => {
    const res = await rawExchange(custom.port, `GET /keyed/c HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key.key}\r\n${spoofLines(['X-Org', 'X-Perms'], 'spoofed')}Connection: close\r\n\r\n`);
    expect(res!.status).toBe(200);
    const rec = only();
    expect(headerValues(rec.rawHeaders, 'x-org')).toEqual(['acme']);
    expect(headerValues(rec.rawHeaders, 'x-perms')).toEqual(['orders:read']);
    expect(rec.rawHeaders.join('\n')).not.toContain('spoofed');
  });

  it('the custom request-id header is the one kept and injected', async () => {
    const res = await send(custom.port, { path: '/public/rid', headers: { 'x-correlation-id': 'corr-1' } });
    expect(res.headers['x-correlation-id']).toBe('corr-1');
    expect(headerValues(only().rawHeaders, 'x-correlation-id')).toEqual(['corr-1']);
  });

  it('the SPEC §5 default names are still stripped when the names are configured', async () => {
    const res = await rawExchange(custom.port, `GET /public/defaults HTTP/1.1\r\nHost: x\r\n${spoofLines(IDENTITY, 'spoofed')}Connection: close\r\n\r\n`);
    expect(res!.status).toBe(200);
    expectNoneOf(only(), IDENTITY, 'spoofed');
  });
});

describe('Connection-nominated headers', () => {
  it('Connection: x-foo makes the proxy drop x-foo (any case, _ spelling) and keep the rest', async () => {
    const res = await rawExchange(proxy.port, 'GET /public/c HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Foo\r\nx-foo: 1\r\nX_FOO: 2\r\nX-Bar: kept\r\n\r\n');
    expect(res!.status).toBe(200);
    const rec = only();
    expect(headerNames(rec.rawHeaders)).not.toContain('x-foo');
    expect(rec.headers['x-bar']).toBe('kept');
    expect(countHeader(rec.rawHeaders, 'connection') === 0 || !/foo/i.test(rec.headers.connection ?? '')).toBe(true);
  });

  it('every Connection line counts', async () => {
    const res = await rawExchange(proxy.port, 'GET /public/c2 HTTP/1.1\r\nHost: x\r\nConnection: x-one\r\nConnection: x-two, close\r\nX-One: 1\r\nX-Two: 2\r\nX-Three: 3\r\n\r\n');
    expect(res!.status).toBe(200);
    const names = headerNames(only().rawHeaders);
    expect(names).not.toContain('x-one');
    expect(names).not.toContain('x-two');
    expect(names).toContain('x-three');
  });

  it('Connection: X-Request-ID, X-Forwarded-* and Host cannot remove what the proxy injects', async () => {
    const res = await rawExchange(
      proxy.port,
      'GET /public/inj HTTP/1.1\r\nHost: client.test\r\nConnection: close, X-Request-ID, X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, Host\r\nX-Request-ID: keep-me-7\r\n\r\n',
    );
    expect(res!.status).toBe(200);
    expect(res!.headers['x-request-id']).toBe('keep-me-7');
    const rec = only();
    expect(headerValues(rec.rawHeaders, 'x-request-id')).toEqual(['keep-me-7']);
    expect(headerValues(rec.rawHeaders, 'x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(headerValues(rec.rawHeaders, 'x-forwarded-proto')).toEqual(['http']);
    expect(headerValues(rec.rawHeaders, 'x-forwarded-host')).toEqual(['client.test']);
    expect(headerValues(rec.rawHeaders, 'host')).toEqual(['client.test']);
    // The client's Connection header itself is never forwarded, so the upstream cannot act on it either.
    expect(headerValues(rec.rawHeaders, 'connection').join(',')).not.toMatch(/x-|host/i);
  });

  it('Connection: X-Tenant-ID on an authenticated route cannot remove the injected identity', async () => {
    const res = await rawExchange(
      proxy.port,
      `GET /keyed/conn HTTP/1.1\r\nHost: x\r\nX-API-Key: ${key.key}\r\nConnection: close, X-Tenant-ID, X_Api_Key_ID, X-Scopes, X-Tenant-Assertion\r\n\r\n`,
    );
    expect(res!.status).toBe(200);
    const rec = only();
    expect(headerValues(rec.rawHeaders, 'x-tenant-id')).toEqual(['acme']);
    expect(headerValues(rec.rawHeaders, 'x-api-key-id')).toEqual(['ak_acme_1']);
    expect(headerValues(rec.rawHeaders, 'x-scopes')).toEqual(['orders:read orders:write']);
    expect(headerValues(rec.rawHeaders, 'x-tenant-assertion')).toHaveLength(1);
    expect(headerValues(rec.rawHeaders, 'connection').join(',')).not.toMatch(/x-/i);
  });

  it('request hop-by-hop headers are not forwarded', async () => {
    const res = await rawExchange(
      proxy.port,
      'GET /public/hop HTTP/1.1\r\nHost: x\r\nKeep-Alive: timeout=1\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nConnection: close\r\n\r\n',
    );
    expect(res!.status).toBe(200);
    const names = headerNames(only().rawHeaders);
    for (const n of ['keep-alive', 'proxy-connection', 'te', 'trailer', 'proxy-authorization']) expect(names).not.toContain(n);
  });
});

describe('credentials', () => {
  const creds = 'Authorization: Bearer secret-token\r\nauthorization: Bearer second\r\nX-API-Key: key-1\r\nx_api_key: key-2\r\nX-API-KEY: key-3\r\n';

  it('Authorization and X-API-Key (any spelling, repeated) are removed on a route without forwardCredentials', async () => {
    const res = await rawExchange(proxy.port, `GET /public/cred HTTP/1.1\r\nHost: x\r\n${creds}Connection: close\r\n\r\n`);
    expect(res!.status).toBe(200);
    const rec = only();
    expect(headerNames(rec.rawHeaders)).not.toContain('authorization');
    expect(headerNames(rec.rawHeaders)).not.toContain('x-api-key');
    expect(rec.rawHeaders.join('\n')).not.toMatch(/secret-token|second|key-[123]/);
  });

  it('they are kept with forwardCredentials: true', async () => {
    const res = await send(proxy.port, { path: '/creds/x', headers: { authorization: 'Bearer secret-token', 'x-api-key': 'key-1' } });
    expect(res.status).toBe(200);
    const rec = only();
    expect(headerValues(rec.rawHeaders, 'authorization')).toEqual(['Bearer secret-token']);
    expect(headerValues(rec.rawHeaders, 'x-api-key')).toEqual(['key-1']);
  });

  it('a valid API key is used for authentication and not forwarded; with forwardCredentials it is', async () => {
    expect((await send(proxy.port, { path: '/keyed/k', headers: { authorization: `Bearer ${key.key}` } })).status).toBe(200);
    expect((await send(proxy.port, { path: '/keyed-creds/k', headers: { authorization: `Bearer ${key.key}` } })).status).toBe(200);
    const [dropped, kept] = upstream.requests;
    expect(countHeader(dropped!.rawHeaders, 'authorization')).toBe(0);
    expect(dropped!.rawHeaders.join('\n')).not.toContain(key.key);
    expect(headerValues(kept!.rawHeaders, 'authorization')).toEqual([`Bearer ${key.key}`]);
    expect(headerValues(kept!.rawHeaders, 'x-tenant-id')).toEqual(['acme']);
  });
});

describe('the same on a chunked POST', () => {
  it('identity headers and credentials are dropped, the chunked body arrives intact', async () => {
    const body = 'a'.repeat(3000);
    const res = await rawExchange(
      proxy.port,
      `POST /public/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n${spoofLines(IDENTITY, 'spoofed')}Authorization: Bearer secret-token\r\nConnection: close\r\n\r\n` +
        `5\r\nhello\r\nbb8\r\n${body}\r\n0\r\n\r\n`,
    );
    expect(res!.status).toBe(200);
    const rec = only();
    expectNoneOf(rec, [...IDENTITY, 'Authorization'], 'spoofed');
    expect(rec.rawHeaders.join('\n')).not.toContain('secret-token');
    expect(rec.body.toString()).toBe(`hello${body}`);
  });

  it('with a key: the proxy identity only', async () => {
    const res = await rawExchange(
      proxy.port,
      `POST /keyed/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-API-Key: ${key.key}\r\n${spoofLines(IDENTITY, 'spoofed')}Connection: close\r\n\r\n4\r\nbody\r\n0\r\n\r\n`,
    );
    expect(res!.status).toBe(200);
    const rec = only();
    expect(rec.rawHeaders.join('\n')).not.toContain('spoofed');
    expect(headerValues(rec.rawHeaders, 'x-tenant-id')).toEqual(['acme']);
    expect(rec.body.toString()).toBe('body');
  });

  it('identity headers sent as chunked trailers never reach the upstream', async () => {
    const before = tracking.tracked.length;
    const res = await rawExchange(
      proxy.port,
      'POST /trailers/t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Tenant-ID, X-Scopes\r\nConnection: close\r\n\r\n' +
        '4\r\nbody\r\n0\r\nX-Tenant-ID: spoofed-trailer\r\nX_Scopes: spoofed-trailer\r\nX-Api-Key-ID: spoofed-trailer\r\n\r\n',
    );
    expect(res!.status).toBe(200);
    const t = tracking.tracked[before]!;
    expect(t.ended).toBe(true);
    expect(t.bodyBytes).toBe(4);
    expect(t.trailers.join('\n')).not.toContain('spoofed');
    expect(headerNames(tracking.requests[before]!.rawHeaders)).not.toContain('x-tenant-id');
  });
});

describe('the same on a 100-continue request', () => {
  it('identity headers, credentials and Expect are dropped; the body follows the 100 intact', async () => {
    const conn = await RawConnection.open(proxy.port);
    await conn.write(`POST /public/continue HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 6\r\nX-API-Key: key-1\r\n${spoofLines(IDENTITY, 'spoofed')}\r\n`);
    const interim = await conn.readBytes('HTTP/1.1 100 Continue\r\n\r\n'.length);
    expect(interim.toString('latin1')).toBe('HTTP/1.1 100 Continue\r\n\r\n');
    await conn.write('abcdef');
    const res = await conn.readResponse();
    conn.destroy();
    expect(res!.status).toBe(200);
    const rec = only();
    expectNoneOf(rec, [...IDENTITY, 'X-API-Key', 'Expect'], 'spoofed');
    expect(rec.rawHeaders.join('\n')).not.toContain('key-1');
    expect(rec.body.toString()).toBe('abcdef');
  });

  it('with a key and a chunked body: the proxy identity only', async () => {
    const res = await send(proxy.port, {
      method: 'POST',
      path: '/keyed/continue',
      expectContinue: true,
      chunks: ['one ', 'two'],
      headers: { 'x-api-key': key.key, 'X-Tenant-ID': 'spoofed', 'x_tenant_id': 'spoofed', 'X-SCOPES': 'spoofed' },
    });
    expect(res.gotContinue).toBe(true);
    expect(res.status).toBe(200);
    const rec = only();
    expect(rec.rawHeaders.join('\n')).not.toContain('spoofed');
    expect(headerValues(rec.rawHeaders, 'x-tenant-id')).toEqual(['acme']);
    expect(countHeader(rec.rawHeaders, 'expect')).toBe(0);
    expect(rec.body.toString()).toBe('one two');
  });
});
