/**
 * Which routes share an upstream's connections (src/upstream/pools.ts): the
 * origin alone for plain HTTP, as before; a gRPC route or TLS settings get a
 * pool of their own, and two TLS settings never share one.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { withUpstreamTls } from '../../../src/config/routes.js';
import type { CompiledRoute } from '../../../src/domain.js';
import { UpstreamPools } from '../../../src/upstream/pools.js';

const config = parseConfig(
  `
listen: { http2: true }
routes:
  - { name: a, match: { pathPrefix: /a }, upstream: "https://127.0.0.1:3000", auth: [none] }
  - { name: b, match: { pathPrefix: /b }, upstream: "https://127.0.0.1:3000/base", auth: [none] }
  - { name: g, match: { pathPrefix: /g }, upstream: "https://127.0.0.1:3000", auth: [none], protocol: grpc }
`,
  'test.yaml',
  {},
);
const [a, b, g] = config.routeList as [CompiledRoute, CompiledRoute, CompiledRoute];
const caOne = withUpstreamTls(b, { ca: 'one', fingerprint: '1111' });
const caTwo = withUpstreamTls(b, { ca: 'two', fingerprint: '2222' });

let pools: UpstreamPools;
afterEach(() => pools?.close());

describe('upstream keys', () => {
  it('is the origin for a plain HTTP route, whatever its base path', () => {
    expect([a.upstreamKey, b.upstreamKey]).toEqual(['https://127.0.0.1:3000', 'https://127.0.0.1:3000']);
    expect([a.protocol, a.tls]).toEqual(['http', null]);
  });

  it('names the protocol and the TLS fingerprint otherwise', () => {
    expect(g.upstreamKey).toBe('grpc https://127.0.0.1:3000');
    expect(caOne.upstreamKey).toBe('http https://127.0.0.1:3000 tls:1111');
    expect(caOne.tls).toEqual({ ca: 'one', fingerprint: '1111' });
  });
});

describe('UpstreamPools.for', () => {
  it('shares one upstream between routes of one key, and never across keys', () => {
    pools = new UpstreamPools();
    pools.configure({ source: config.source, routeList: [a, b, g, caOne, caTwo] });
    expect(pools.for(a)).toBe(pools.for(b));
    const distinct = new Set([a, g, caOne, caTwo].map((r) => pools.for(r)));
    expect(distinct.size).toBe(4);
    expect(pools.for(withUpstreamTls(b, { ca: 'one', fingerprint: '1111' }))).toBe(pools.for(caOne));
  });
});
