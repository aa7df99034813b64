/**
 * The per-request lines joined from cached segments (src/observability/line-shape.ts)
 * must be what JSON.stringify writes for the same values, whatever the
 * sequence of requests: a memo that kept a stale segment would write the
 * previous request's status or cost.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { lineShape } from '../../src/observability/line-shape.js';
import { RequestEventParts, requestEventLine } from '../../src/usage/event-json.js';
import type { RequestUsageEvent } from '../../src/usage/types.js';

let seed = 11;
const random = (): number => (seed = (seed * 48271) % 2147483647) / 2147483647;
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;

describe('line shapes', () => {
  it('a sequence of requests through one key: every line is JSON.stringify(event), the memos never stale', () => {
    const key = {};
    for (let i = 0; i < 3000; i++) {
      const route = pick(['api', 'orders', null]);
      const event: { -readonly [K in keyof RequestUsageEvent]: RequestUsageEvent[K] } = {
        id: `ev-${i}`,
        ts: new Date(1_764_000_000_000 + Math.floor(i / 3)).toISOString(),
        type: 'request',
        tenantId: pick(['acme', 'globex', null]),
        projectId: pick(['web', null]),
        apiKeyId: pick(['ak_1', 'ak_"2"', null]),
        subject: pick([null, 'user\n1']),
        route,
        method: pick(['GET', 'POST']),
        status: pick([200, 200, 200, 404, 429, 503]),
        outcome: pick(['forwarded', 'forwarded', 'rate_limited', 'no_route']),
        durationMs: Math.round(random() * 20_000) / 1000,
        bytesIn: pick([0, 0, 17]),
        bytesOut: pick([100, 100, 11, 0]),
        cost: pick([0, 1, 3]),
        requestId: pick([`rq-${i}`, 'same-id']),
        plan: pick(['basic', null]),
      };
      const shape = lineShape(key, event.tenantId, event.projectId, event.apiKeyId, event.subject, event.route, event.method, event.plan);
      shape.setStatus(event.status, event.outcome, null);
      if (random() < 0.5) event.id = randomUUID();
      if (random() < 0.5) event.requestId = randomUUID();
      const parts = new RequestEventParts();
      Object.assign(parts, { id: event.id, ts: event.ts, shape, durationMs: event.durationMs, bytesIn: event.bytesIn, bytesOut: event.bytesOut, cost: event.cost, requestId: event.requestId });
      expect(requestEventLine(parts)).toBe(JSON.stringify(event));
    }
  });

  it('one shape per set of values, kept per key; at most 8 per key, the oldest dropped', () => {
    const key = {};
    const a = lineShape(key, 'acme', null, 'ak_1', null, 'api', 'GET', 'basic');
    expect(lineShape(key, 'acme', null, 'ak_1', null, 'api', 'GET', 'basic')).toBe(a);
    expect(lineShape(key, 'acme', null, 'ak_1', null, 'api', 'POST', 'basic')).not.toBe(a);
    expect(lineShape({}, 'acme', null, 'ak_1', null, 'api', 'GET', 'basic')).not.toBe(a);
    for (let i = 0; i < 8; i++) lineShape(key, 'acme', null, 'ak_1', null, `r${i}`, 'GET', 'basic');
    const again = lineShape(key, 'acme', null, 'ak_1', null, 'api', 'GET', 'basic');
    expect(again).not.toBe(a);
    expect(again.accessWho).toEqual(a.accessWho);
  });
});
