/**
 * Stage 6 with named limits (SPEC §11), after stages 1–5 on an in-memory
 * context and the in-memory store: limits chosen by route and method,
 * counted per tenant, project and subject; overrides that change or disable
 * a limit; the refusal naming its limit (body field, Retry-After, usage
 * metric label via ctx.limitedBy); the draft-10 RateLimit-Policy and
 * RateLimit fields; a refusal by any limit charging none; a `1mo` window
 * on the tenant's billing day. Date is faked (nothing else) and the store
 * gets the same clock.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { generateApiKey } from '../../../src/auth/api-key-format.js';
import type { CompiledConfig } from '../../../src/config/compile.js';
import { MemoryLimitStore } from '../../../src/limits/memory-store.js';
import { HistogramSeries } from '../../../src/observability/series-metrics.js';
import { authenticate } from '../../../src/stages/authenticate.js';
import { authorize } from '../../../src/stages/authorize.js';
import { limit } from '../../../src/stages/limit.js';
import { route } from '../../../src/stages/route.js';
import { sanitize } from '../../../src/stages/sanitize.js';
import { resolveTenant } from '../../../src/stages/tenant.js';
import { compileConfig, HS256_ISSUER_YAML, hs256Token, refusal, requestContext, runStages } from '../../helpers/stage-context.js';

const NOW = Date.UTC(2026, 2, 10, 12, 20, 0); // 12:20 UTC: the hour's window ends in 2,400 s
const KEYS = Object.fromEntries(['a1', 'a2', 'b1', 'big', 'off', 'feb'].map((k) => [k, generateApiKey({ env: 'live', id: `ak_${k}` })]));

let config: CompiledConfig;
let store: MemoryLimitStore;
let wait: HistogramSeries;

beforeAll(async () => {
  config = await compileConfig(`
${HS256_ISSUER_YAML}
plans:
  team:
    limits:
      - { name: api-per-minute, rate: { limit: 5, window: 1m } }
      - { name: deployments, routes: [deployments], methods: [POST], quota: { limit: 2, window: 1h } }
      - { name: jobs, routes: [jobs], per: project, concurrency: 1 }
      - { name: searches, routes: [search], per: subject, quota: { limit: 1, window: 1d } }
  billing:
    limits:
      - { name: calls-per-month, quota: { limit: 2, window: 1mo } }
tenants:
  - { id: acme, plan: team }
  - { id: bigco, plan: team, overrides: { limits: { deployments: { quota: { limit: 3 } }, api-per-minute: null } } }
  - { id: sec, plan: billing, billingDay: 31 }
apiKeys:
  - { id: ak_a1, tenant: acme, project: p1, hash: "${KEYS.a1!.hash}" }
  - { id: ak_a2, tenant: acme, project: p2, hash: "${KEYS.a2!.hash}" }
  - { id: ak_b1, tenant: acme, hash: "${KEYS.b1!.hash}" }
  - { id: ak_big, tenant: bigco, hash: "${KEYS.big!.hash}" }
  - { id: ak_feb, tenant: sec, hash: "${KEYS.feb!.hash}" }
routes:
  - { name: deployments, match: { pathPrefix: /deployments }, upstream: "http://127.0.0.1:3000" }
  - { name: jobs, match: { pathPrefix: /jobs }, upstream: "http://127.0.0.1:3000" }
  - { name: search, match: { pathPrefix: /search }, upstream: "http://127.0.0.1:3000" }
  - { name: other, match: { pathPrefix: /other }, upstream: "http://127.0.0.1:3000" }
`);
});
beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(NOW);
  store = new MemoryLimitStore(() => Date.now());
  wait = new HistogramSeries(new Float64Array([0.001]));
});
afterEach(() => vi.useRealTimers());

async function send(credential: { key: string } | { token: string }, url: string, method = 'GET') {
  const header: [string, string] = 'key' in credential ? ['X-API-Key', credential.key] : ['Authorization', `Bearer ${credential.token}`];
  const ctx = requestContext(config, { url, method, headers: [header] });
  const rejection = await runStages(ctx, [route, sanitize, authenticate, resolveTenant, authorize, (c) => limit(c, store, wait)]);
  const headers = ctx.limitHeaders === null ? null : Object.fromEntries(Array.from({ length: ctx.limitHeaders.length / 2 }, (_, i) => [ctx.limitHeaders![2 * i]!, ctx.limitHeaders![2 * i + 1]!]));
  return { ctx, rejection, refused: refusal(rejection), headers };
}
const key = (k: string) => ({ key: KEYS[k]!.key });

describe('named limits chosen by route and method', () => {
  it('POST /deployments: the minute rate and the hourly quota, both in RateLimit-Policy; RateLimit names the one nearest to refusing', async () => {
    const first = await send(key('a1'), '/deployments', 'POST');
    expect(first.refused).toBeUndefined();
    expect(first.headers).toEqual({
      'ratelimit-limit': '2',
      'ratelimit-remaining': '1',
      'ratelimit-reset': '2400',
      'x-ratelimit-limit': '2',
      'x-ratelimit-remaining': '1',
      'x-ratelimit-reset': `${NOW / 1000 + 2400}`,
      'ratelimit-policy': '"api-per-minute";q=5;w=60, "deployments";q=2;w=3600',
      ratelimit: '"deployments";r=1;t=2400',
    });
    const second = await send(key('a1'), '/deployments', 'POST');
    expect(second.refused).toBeUndefined();
    // 2 of 2 used: a named quota crossing 80 % and 95 % sends no quota_warning (those are the daily and monthly shorthands').
    expect(second.ctx.quotaCrossings).toBeNull();
    const third = await send(key('a1'), '/deployments', 'POST');
    expect(third.refused).toEqual({ status: 429, code: 'quota_exceeded', reason: 'quota' });
    expect(third.rejection!.limit).toBe('deployments');
    expect(third.rejection!.headers!['retry-after']).toBe('2400');
    expect(third.ctx.limitedBy).toBe('deployments');
  });

  it('GET /deployments and other routes are not under the deployments quota; every route is under the minute rate', async () => {
    for (let i = 0; i < 2; i++) expect((await send(key('a1'), '/deployments', 'POST')).refused).toBeUndefined();
    const get = await send(key('a1'), '/deployments');
    expect(get.refused).toBeUndefined();
    expect(get.headers!['ratelimit-policy']).toBe('"api-per-minute";q=5;w=60');
    // 5 tokens, 3 taken: one comes back every 12 s.
    expect(get.headers!.ratelimit).toBe('"api-per-minute";r=2;t=36');
    for (let i = 0; i < 2; i++) expect((await send(key('a1'), '/other')).refused).toBeUndefined();
    const sixth = await send(key('a1'), '/other');
    expect(sixth.refused).toEqual({ status: 429, code: 'rate_limited', reason: 'rate' });
    expect(sixth.rejection!.limit).toBe('api-per-minute');
    // One token every 12 s (5 a minute).
    expect(sixth.rejection!.headers!['retry-after']).toBe('12');
  });

  it('all or nothing: a POST the quota refuses takes no token of the minute rate', async () => {
    for (let i = 0; i < 2; i++) expect((await send(key('a1'), '/deployments', 'POST')).refused).toBeUndefined();
    for (let i = 0; i < 5; i++) expect((await send(key('a1'), '/deployments', 'POST')).rejection!.limit).toBe('deployments');
    // 2 of 5 tokens taken: 3 GETs still pass, the 4th is refused.
    for (let i = 0; i < 3; i++) expect((await send(key('a1'), '/other')).refused).toBeUndefined();
    expect((await send(key('a1'), '/other')).rejection!.limit).toBe('api-per-minute');
  });

  it('the quota resets at the hour: the next window counts from zero', async () => {
    for (let i = 0; i < 2; i++) expect((await send(key('a1'), '/deployments', 'POST')).refused).toBeUndefined();
    expect((await send(key('a1'), '/deployments', 'POST')).refused?.code).toBe('quota_exceeded');
    vi.setSystemTime(Date.UTC(2026, 2, 10, 12, 59, 59, 999));
    expect((await send(key('a1'), '/deployments', 'POST')).refused?.code).toBe('quota_exceeded');
    vi.setSystemTime(Date.UTC(2026, 2, 10, 13, 0, 0));
    const next = await send(key('a1'), '/deployments', 'POST');
    expect(next.refused).toBeUndefined();
    expect(next.headers!.ratelimit).toBe('"deployments";r=1;t=3600');
  });
});

describe('per project and per subject', () => {
  it('jobs: one in flight per project; a key without a project counts as the tenant', async () => {
    const p1 = await send(key('a1'), '/jobs');
    expect(p1.refused).toBeUndefined();
    expect(p1.ctx.lease!.map((l) => l.key)).toEqual(['tg:{acme}:n:jobs:c:p:p1']);
    const again = await send(key('a1'), '/jobs');
    expect(again.refused).toEqual({ status: 429, code: 'concurrency_limited', reason: 'concurrency' });
    expect(again.rejection!.limit).toBe('jobs');
    expect(again.rejection!.headers!['retry-after']).toBe('1');
    expect((await send(key('a2'), '/jobs')).refused).toBeUndefined(); // project p2
    const noProject = await send(key('b1'), '/jobs');
    expect(noProject.ctx.lease!.map((l) => l.key)).toEqual(['tg:{acme}:n:jobs:c:t']);
    store.release(p1.ctx.lease![0]!.key, p1.ctx.lease![0]!.leaseId);
    expect((await send(key('a1'), '/jobs')).refused).toBeUndefined();
  });

  it('searches: one a day per subject; two users of one tenant each get their own', async () => {
    // The verifier reads the real clock: tokens are signed by it.
    vi.useRealTimers();
    const alice = { token: await hs256Token({ sub: 'alice', tid: 'acme' }) };
    const bob = { token: await hs256Token({ sub: 'bob', tid: 'acme' }) };
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(NOW);
    expect((await send(alice, '/search')).refused).toBeUndefined();
    const refused = await send(alice, '/search');
    expect(refused.rejection!.limit).toBe('searches');
    expect(refused.rejection!.headers!['retry-after']).toBe(`${12 * 3600 - 20 * 60}`);
    expect((await send(bob, '/search')).refused).toBeUndefined();
  });
});

describe('overrides and billing day', () => {
  it('bigco: deployments raised to 3, the minute rate disabled (null): neither in its policy nor in its way', async () => {
    for (let i = 0; i < 3; i++) expect((await send(key('big'), '/deployments', 'POST')).refused).toBeUndefined();
    const fourth = await send(key('big'), '/deployments', 'POST');
    expect(fourth.rejection!.limit).toBe('deployments');
    expect(fourth.rejection!.headers!['ratelimit-policy']).toBe('"deployments";q=3;w=3600');
    for (let i = 0; i < 20; i++) expect((await send(key('big'), '/other')).refused).toBeUndefined();
    expect((await send(key('big'), '/other')).headers).toBeNull();
  });

  it('billing day 31 in February: the month turns on the 28th at 00:00 UTC', async () => {
    vi.setSystemTime(Date.UTC(2027, 1, 27, 23, 0, 0));
    for (let i = 0; i < 2; i++) expect((await send(key('feb'), '/other')).refused).toBeUndefined();
    const refused = await send(key('feb'), '/other');
    expect(refused.rejection!.limit).toBe('calls-per-month');
    expect(refused.rejection!.headers!['retry-after']).toBe('3600');
    vi.setSystemTime(Date.UTC(2027, 1, 28, 0, 0, 0));
    const next = await send(key('feb'), '/other');
    expect(next.refused).toBeUndefined();
    // 31 days to March 31st.
    expect(next.headers!['ratelimit-policy']).toBe(`"calls-per-month";q=2;w=${31 * 86_400}`);
    expect(next.headers!.ratelimit).toBe(`"calls-per-month";r=1;t=${31 * 86_400}`);
  });
});

describe('config checks', () => {
  it('an unknown route, a duplicate name, a shorthand name, an override of a missing limit or of another kind are config errors', async () => {
    const base = (plans: string, tenants = '[{ id: t, plan: p }]') => `
plans:
  p:
${plans}
tenants: ${tenants}
routes:
  - { name: api, match: { pathPrefix: /api }, upstream: "http://127.0.0.1:3000" }
`;
    await expect(compileConfig(base('    limits: [{ name: x, routes: [nope], rate: { limit: 1, window: 1m } }]'))).rejects.toThrow(/plans\.p\.limits\[0\]\.routes\[0\]: unknown route "nope"/);
    await expect(compileConfig(base('    limits: [{ name: x, rate: { limit: 1, window: 1m } }, { name: x, concurrency: 2 }]'))).rejects.toThrow(/duplicate limit name "x"/);
    await expect(compileConfig(base('    limits: [{ name: rate, concurrency: 2 }]'))).rejects.toThrow(/shorthand/);
    await expect(compileConfig(base('    limits: [{ name: x, rate: { limit: 1, window: 1m }, concurrency: 2 }]'))).rejects.toThrow(/exactly one of rate, quota, concurrency/);
    await expect(compileConfig(base('    limits: [{ name: x, quota: { limit: 1, window: 2h } }]'))).rejects.toThrow(/1m, 1h, 1d, 1mo/);
    await expect(compileConfig(base('    limits: [{ name: x, concurrency: 2 }]', '[{ id: t, plan: p, overrides: { limits: { y: null } } }]'))).rejects.toThrow(/the plan has no limit "y"/);
    await expect(compileConfig(base('    limits: [{ name: x, concurrency: 2 }]', '[{ id: t, plan: p, overrides: { limits: { x: { quota: { limit: 3 } } } } }]'))).rejects.toThrow(/"x" is a concurrency limit/);
    await expect(compileConfig(base('    limits: []', '[{ id: t, plan: p, billingDay: 32 }]'))).rejects.toThrow(/billingDay/);
  });
});
