/**
 * The forward stage's config keys: `upstreams:` (per-origin connection
 * limits and shares) and `routes[].idleTimeoutMs` / `queueTimeoutMs`, their
 * defaults as compiled, and the problems a bad value reports.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { configProblems } from '../../helpers/config-problems.js';

const ROUTES = `
routes:
  - { name: a, match: { pathPrefix: /a }, upstream: "http://127.0.0.1:3000", auth: [none] }
  - { name: b, match: { pathPrefix: /b }, upstream: "http://127.0.0.1:3000/base", auth: [none], timeoutMs: 1000 }
  - { name: c, match: { pathPrefix: /c }, upstream: "http://127.0.0.1:3001", auth: [none], idleTimeoutMs: 700, queueTimeoutMs: 9000 }
`;


describe('routes[].idleTimeoutMs and queueTimeoutMs', () => {
  it('default to timeoutMs and to 5000 ms (or timeoutMs when shorter); set values are kept', () => {
    const config = parseConfig(ROUTES, 'test.yaml', {});
    const byName = Object.fromEntries(config.routeList.map((r) => [r.name, [r.timeoutMs, r.idleTimeoutMs, r.queueTimeoutMs]]));
    expect(byName).toEqual({ a: [30000, 30000, 5000], b: [1000, 1000, 1000], c: [30000, 700, 9000] });
  });

  it('must be positive integers', () => {
    const yaml = `routes:\n  - { name: a, match: {}, upstream: "http://x", idleTimeoutMs: 0, queueTimeoutMs: 1.5 }\n`;
    expect(configProblems(yaml)).toEqual(['routes[0].idleTimeoutMs: Too small: expected number to be >0', 'routes[0].queueTimeoutMs: Invalid input: expected int, received number']);
  });
});

describe('upstreams', () => {
  it('is empty by default; an entry gets the default limits it does not set, its origin normalised', () => {
    expect(parseConfig(ROUTES, 'test.yaml', {}).source.upstreams).toEqual([]);
    const config = parseConfig(`${ROUTES}upstreams:\n  - { origin: "http://127.0.0.1:3000/", maxConnections: 64 }\n`, 'test.yaml', {});
    expect(config.source.upstreams).toEqual([{ origin: 'http://127.0.0.1:3000', maxConnections: 64, maxPending: 1024, routeShare: 0.5, tenantShare: 0.5 }]);
  });

  it('reports an origin with a path, a share out of (0, 1], a duplicate origin and an unknown key, all at once', () => {
    const yaml = `${ROUTES}upstreams:
  - { origin: "http://127.0.0.1:3000/base" }
  - { origin: "http://127.0.0.1:3001" }
  - { origin: "http://127.0.0.1:3001/", routeShare: 0 }
  - { origin: "http://127.0.0.1:3002", tenantShare: 1.5, maxConections: 3 }
`;
    expect(configProblems(yaml)).toEqual([
      'upstreams[0].origin: must be an origin: scheme://host[:port], no path',
      'upstreams[2].routeShare: Too small: expected number to be >0',
      'upstreams[2].origin: duplicate upstream origin "http://127.0.0.1:3001"',
      'upstreams[3].tenantShare: Too big: expected number to be <=1',
      'upstreams[3].maxConections: unknown key "maxConections"',
    ]);
    const dup = `${ROUTES}upstreams:\n  - { origin: "http://127.0.0.1:3001" }\n  - { origin: "http://127.0.0.1:3001/" }\n`;
    expect(configProblems(dup)).toEqual(['upstreams[1].origin: duplicate upstream origin "http://127.0.0.1:3001"']);
  });
});
