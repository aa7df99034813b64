/**
 * The route stage (src/stages/route.ts): the table built from YAML routes and
 * the match rules — exact host, then `*.suffix`, then any host; the longest
 * prefix on a segment boundary; 405 with Allow (never a fall-through to a
 * shorter prefix); HEAD with GET; Host compared case-insensitively without
 * its port, IPv6 literals included. The last block checks the same rules
 * over real HTTP through an in-process proxy.
 */
import type { IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CompiledConfig } from '../../../src/config/compile.js';
import { parseConfig } from '../../../src/config/load.js';
import { RequestContext } from '../../../src/context.js';
import { dispatchPath, hostOf, route, upstreamPath } from '../../../src/stages/route.js';
import { rawJson, rawRequest, startProxy, startUpstream, type RunningProxy, type Upstream } from '../../helpers/servers.js';

interface RouteSpec {
  name: string;
  host?: string;
  prefix?: string;
  methods?: string[];
}

function table(routes: RouteSpec[]): CompiledConfig {
  const lines = routes.map((r) => {
    const match = [r.host && `host: "${r.host}"`, r.prefix && `pathPrefix: ${r.prefix}`, r.methods && `methods: [${r.methods.join(', ')}]`].filter(Boolean).join(', ');
    return `  - { name: ${r.name}, match: { ${match} }, upstream: "http://127.0.0.1:3000", auth: [none] }`;
  });
  return parseConfig(`routes:\n${lines.join('\n')}\n`, 'routes.yaml', {}) as CompiledConfig;
}

interface Outcome {
  route?: string;
  status?: string;
  allow?: string[];
  host?: string;
  path?: string;
}

/** Runs the route stage on a request-shaped object; returns the chosen route or the rejection. */
function match(config: CompiledConfig, req: { url: string; host?: string; method?: string; httpVersionMinor?: number }): Outcome {
  const headers = req.host === undefined ? {} : { host: req.host };
  const message = { url: req.url, method: req.method ?? 'GET', headers, httpVersionMajor: 1, httpVersionMinor: req.httpVersionMinor ?? 1 } as unknown as IncomingMessage;
  const ctx = new RequestContext(message, null, null, config, 0);
  const rejection = route(ctx);
  if (rejection === undefined) return { route: ctx.route!.name, host: ctx.host, path: ctx.path };
  const allow = rejection.headers?.allow?.split(/,\s*/).sort();
  return { status: rejection.reason ? `${rejection.code}/${rejection.reason}` : rejection.code, ...(allow ? { allow } : {}) };
}

describe('host precedence', () => {
  const config = table([
    { name: 'any', prefix: '/x' },
    { name: 'wild', host: '*.example.com', prefix: '/x' },
    { name: 'wild-long', host: '*.eu.example.com', prefix: '/x' },
    { name: 'exact', host: 'api.example.com', prefix: '/x' },
  ]);

  it('an exact host beats a wildcard, which beats a route without host', () => {
    expect(match(config, { url: '/x', host: 'api.example.com' }).route).toBe('exact');
    expect(match(config, { url: '/x', host: 'www.example.com' }).route).toBe('wild');
    expect(match(config, { url: '/x', host: 'example.org' }).route).toBe('any');
  });

  it('the longest wildcard suffix wins; a wildcard needs a label before its suffix', () => {
    expect(match(config, { url: '/x', host: 'a.eu.example.com' }).route).toBe('wild-long');
    expect(match(config, { url: '/x', host: 'a.b.example.com' }).route).toBe('wild');
    expect(match(config, { url: '/x', host: 'example.com' }).route).toBe('any');
    expect(match(config, { url: '/x', host: 'notexample.com' }).route).toBe('any');
  });

  it('compares hosts case-insensitively and ignores the port', () => {
    expect(match(config, { url: '/x', host: 'API.Example.COM:8443' })).toMatchObject({ route: 'exact', host: 'api.example.com' });
    expect(match(config, { url: '/x', host: 'WWW.EXAMPLE.COM:80' }).route).toBe('wild');
    expect(match(table([{ name: 'upper', host: 'API.EXAMPLE.COM' }]), { url: '/', host: 'api.example.com' }).route).toBe('upper');
  });

  it('reads an IPv6 literal Host with and without a port', () => {
    expect(hostOf('[::1]:8080')).toBe('[::1]');
    expect(hostOf('[::1]')).toBe('[::1]');
    expect(hostOf('[2001:DB8::1]:443')).toBe('[2001:db8::1]');
    expect(match(config, { url: '/x', host: '[::1]:8080' })).toMatchObject({ route: 'any', host: '[::1]' });
  });

  it('a fully qualified Host (trailing dot) matches like the bare name', () => {
    expect(match(config, { url: '/x', host: 'api.example.com.' })).toMatchObject({ route: 'exact', host: 'api.example.com' });
    expect(match(config, { url: '/x', host: 'www.example.com.:8080' }).route).toBe('wild');
  });

  it('a Host that is not name[:port] or [v6][:port] is a 400', () => {
    for (const host of ['api.example.com/x', 'user@api.example.com', 'api example.com', 'api.example.com:80:80', '[::1', 'a..b']) {
      expect(match(config, { url: '/x', host }).status, host).toBe('bad_request/bad_host');
    }
  });

  it('an absolute-form target names the host, not the Host header', () => {
    expect(match(config, { url: 'http://api.example.com/x', host: 'other.org' }).route).toBe('exact');
    expect(match(config, { url: 'http://other.org:8080/x', host: 'api.example.com' }).route).toBe('any');
  });

  it('a host whose own routes do not cover the path falls back to routes without host', () => {
    const c = table([
      { name: 'exact', host: 'api.example.com', prefix: '/a' },
      { name: 'any', prefix: '/b' },
    ]);
    expect(match(c, { url: '/b/1', host: 'api.example.com' }).route).toBe('any');
  });

  it('a host whose exact routes do not cover the path falls back to a matching wildcard before routes without host', () => {
    const c = table([
      { name: 'exact', host: 'api.example.com', prefix: '/a' },
      { name: 'wild', host: '*.example.com', prefix: '/b' },
      { name: 'wild-long', host: '*.eu.example.com', prefix: '/c' },
      { name: 'any', prefix: '/' },
    ]);
    expect(match(c, { url: '/b/1', host: 'api.example.com' }).route).toBe('wild');
    expect(match(c, { url: '/b/1', host: 'x.eu.example.com' }).route).toBe('wild');
  });

  it('HTTP/1.1 without Host is a 400; HTTP/1.0 without Host uses the routes without host', () => {
    expect(match(config, { url: '/x' }).status).toBe('bad_request/missing_host');
    expect(match(config, { url: '/x', httpVersionMinor: 0 }).route).toBe('any');
  });

  it('a target the path rule refuses is a 400 before any matching', () => {
    expect(match(config, { url: '/x/%2f', host: 'api.example.com' }).status).toBe('bad_request/bad_path');
    expect(match(config, { url: '/x#f', host: 'api.example.com' }).status).toBe('bad_request/bad_path');
  });
});

describe('path prefixes', () => {
  const config = table([
    { name: 'root', prefix: '/' },
    { name: 'api', prefix: '/api' },
    { name: 'v2', prefix: '/api/v2' },
    { name: 'orders', prefix: '/orders/' },
  ]);

  it('the longest matching prefix wins', () => {
    expect(match(config, { url: '/api/v2/users', host: 'h' }).route).toBe('v2');
    expect(match(config, { url: '/api/v2', host: 'h' }).route).toBe('v2');
    expect(match(config, { url: '/api/v1/users', host: 'h' }).route).toBe('api');
    expect(match(config, { url: '/other', host: 'h' }).route).toBe('root');
  });

  it('prefixes match whole segments only', () => {
    expect(match(config, { url: '/api', host: 'h' }).route).toBe('api');
    expect(match(config, { url: '/api/', host: 'h' }).route).toBe('api');
    expect(match(config, { url: '/apis', host: 'h' }).route).toBe('root');
    expect(match(config, { url: '/api/v2x', host: 'h' }).route).toBe('api');
    expect(match(config, { url: '/api-admin', host: 'h' }).route).toBe('root');
  });

  it('a prefix written with a trailing slash also matches the bare segment, and no longer name', () => {
    expect(match(config, { url: '/orders', host: 'h' }).route).toBe('orders');
    expect(match(config, { url: '/orders/7', host: 'h' }).route).toBe('orders');
    expect(match(config, { url: '/ordersx', host: 'h' }).route).toBe('root');
  });

  it('matches the normalised path, not the raw one', () => {
    expect(match(config, { url: '/%61pi/v2/x', host: 'h' })).toMatchObject({ route: 'v2', path: '/api/v2/x' });
    expect(match(config, { url: '/api/v2/../v1', host: 'h' })).toMatchObject({ route: 'api', path: '/api/v1' });
    expect(match(config, { url: '//api//v2', host: 'h' })).toMatchObject({ route: 'v2', path: '/api/v2' });
  });

  it('no match is a 404', () => {
    const c = table([{ name: 'orders', prefix: '/orders' }]);
    expect(match(c, { url: '/orders-admin', host: 'h' }).status).toBe('no_route');
    expect(match(c, { url: '/', host: 'h' }).status).toBe('no_route');
  });
});

describe('the path as the upstream dispatches it', () => {
  it.each([
    ['/orders/secret;x', false, '/orders/secret'],
    ['/orders;a=1/secret;jsessionid=0/x', false, '/orders/secret/x'],
    ['/a;/b;', false, '/a/b'],
    ['/Orders/Secret;x', true, '/orders/secret'],
    ['/Orders/Secret', false, '/Orders/Secret'],
  ])('%s (case-insensitive: %s) → %s', (path, caseInsensitive, expected) => {
    expect(dispatchPath(path, caseInsensitive)).toBe(expected);
  });

  it('stripPrefix drops the matched segments, whatever their parameters or case', () => {
    const r = route2('/api/v1');
    expect(upstreamPath(r, '/api/v1/x', '?q')).toBe('/base/x?q');
    expect(upstreamPath(r, '/api;a/v1;b/x;c', '')).toBe('/base/x;c');
    expect(upstreamPath(r, '/API/V1/x', '')).toBe('/base/x');
    expect(upstreamPath(r, '/api/v1;b', '')).toBe('/base/');
  });
});

function route2(prefix: string): CompiledConfig['routes']['anyHost'][number]['routes'][number] {
  const config = parseConfig(`routes:\n  - { name: r, match: { pathPrefix: ${prefix} }, upstream: "http://127.0.0.1:3000/base", auth: [none], stripPrefix: true }\n`, 'r.yaml', {}) as CompiledConfig;
  return config.routes.anyHost[0]!.routes[0]!;
}

describe('methods', () => {
  const config = table([
    { name: 'root', prefix: '/' },
    { name: 'read', prefix: '/items', methods: ['GET'] },
    { name: 'write', prefix: '/items', methods: ['post', 'PUT'] },
    { name: 'post-only', prefix: '/submit', methods: ['POST'] },
  ]);

  it('routes sharing a prefix are chosen by method', () => {
    expect(match(config, { url: '/items/1', host: 'h', method: 'GET' }).route).toBe('read');
    expect(match(config, { url: '/items/1', host: 'h', method: 'POST' }).route).toBe('write');
    expect(match(config, { url: '/items/1', host: 'h', method: 'PUT' }).route).toBe('write');
  });

  it('405 with Allow when the longest prefix does not allow the method: no fall-through to a shorter prefix', () => {
    expect(match(config, { url: '/items/1', host: 'h', method: 'DELETE' })).toEqual({ status: 'method_not_allowed', allow: ['GET', 'HEAD', 'POST', 'PUT'] });
    expect(match(config, { url: '/submit', host: 'h', method: 'GET' })).toEqual({ status: 'method_not_allowed', allow: ['POST'] });
  });

  it('a route that allows GET also takes HEAD; one that does not, does not', () => {
    expect(match(config, { url: '/items', host: 'h', method: 'HEAD' }).route).toBe('read');
    expect(match(config, { url: '/submit', host: 'h', method: 'HEAD' })).toEqual({ status: 'method_not_allowed', allow: ['POST'] });
  });

  it('a 405 on an exact host does not fall through to the routes without host', () => {
    const c = table([
      { name: 'exact', host: 'api.example.com', prefix: '/a', methods: ['GET'] },
      { name: 'any', prefix: '/a' },
    ]);
    expect(match(c, { url: '/a', host: 'api.example.com', method: 'POST' })).toEqual({ status: 'method_not_allowed', allow: ['GET', 'HEAD'] });
    expect(match(c, { url: '/a', host: 'other.org', method: 'POST' }).route).toBe('any');
  });
});

describe('over HTTP, through the proxy', () => {
  let upstream: Upstream;
  let proxy: RunningProxy;
  beforeAll(async () => {
    upstream = await startUpstream();
    // Each host tier forwards under its own upstream base path, so the upstream sees which route matched.
    const r = (name: string, match: string, base = '') => `  - { name: ${name}, match: { ${match} }, upstream: "${upstream.url}${base}", auth: [none] }\n`;
    proxy = await startProxy(
      'routes:\n' +
        r('any', 'pathPrefix: /') +
        r('orders', 'pathPrefix: /orders, methods: [GET]') +
        r('exact', 'host: api.example.com, pathPrefix: /x', '/exact') +
        r('wild', 'host: "*.example.com", pathPrefix: /x', '/wild'),
    );
  });
  afterAll(async () => {
    await proxy?.close();
    await upstream?.close();
  });

  const get = (path: string, headers: string, method = 'GET') => rawRequest(proxy.port, `${method} ${path} HTTP/1.1\r\n${headers}Connection: close\r\n\r\n`);
  const routedBy = (n: number) => upstream.requests.slice(n);

  it('405 carries Allow and the SPEC error body, and nothing reaches the upstream', async () => {
    const before = upstream.requests.length;
    const res = await fetch(`${proxy.url}/orders/1`, { method: 'POST', body: 'x' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')?.split(/,\s*/).sort()).toEqual(['GET', 'HEAD']);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('method_not_allowed');
    expect(routedBy(before)).toHaveLength(0);
  });

  it('HEAD on a GET route is forwarded', async () => {
    const before = upstream.requests.length;
    const res = await fetch(`${proxy.url}/orders/1`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(routedBy(before).map((r) => [r.method, r.url])).toEqual([['HEAD', '/orders/1']]);
  });

  it('the upstream receives the normalised path that was matched', async () => {
    const before = upstream.requests.length;
    expect((await get('/%6frders//7/./x/..?q=%2F', 'Host: h\r\n')).status).toBe(200);
    expect(routedBy(before).map((r) => r.url)).toEqual(['/orders/7/?q=%2F']);
  });

  it('an IPv6 Host with a port is accepted and matched as a host without port', async () => {
    const res = await get('/x', 'Host: [::1]:8080\r\n');
    expect(res.status).toBe(200);
    expect(rawJson(res)).toEqual({ ok: true, url: '/x' });
  });

  it('exact host, then wildcard, then any host; Host compared case-insensitively without its port', async () => {
    const before = upstream.requests.length;
    for (const host of ['API.EXAMPLE.COM:8080', 'Www.Example.Com', 'example.org:80']) expect((await get('/x/1', `Host: ${host}\r\n`)).status).toBe(200);
    expect(routedBy(before).map((r) => r.url)).toEqual(['/exact/x/1', '/wild/x/1', '/x/1']);
  });

  it('an encoded slash in the path is a 400 and nothing is forwarded', async () => {
    const before = upstream.requests.length;
    const res = await get('/orders%2f..%2fadmin', 'Host: h\r\n');
    expect(res.status).toBe(400);
    expect(routedBy(before)).toHaveLength(0);
  });
});
