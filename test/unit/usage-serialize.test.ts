/**
 * The hand-written request-event line must be exactly what JSON.stringify of
 * the event gives: same fields, same order, same escaping.
 */
import { describe, expect, it } from 'vitest';
import { serializeEvent } from '../../src/usage/serialize.js';
import type { RequestUsageEvent } from '../../src/usage/types.js';

const base: RequestUsageEvent = {
  id: '0c0eb394-7de4-4367-9a46-5d61c658b7ad',
  ts: '2026-11-25T21:01:35.129Z',
  type: 'request',
  tenantId: 'acme',
  projectId: 'web',
  apiKeyId: 'ak_3f9c2d1e',
  subject: 'user-1',
  route: 'orders',
  method: 'GET',
  status: 200,
  outcome: 'forwarded',
  durationMs: 19.596,
  bytesIn: 0,
  bytesOut: 518,
  cost: 1,
  requestId: 'dff3fcdf-1552-4d19-9393-9cd4c742119d',
  plan: 'pro',
};

describe('serializeEvent', () => {
  it.each([
    ['a typical admitted request', base],
    ['a request refused before authentication (nulls)', { ...base, tenantId: null, projectId: null, apiKeyId: null, subject: null, route: null, plan: null, outcome: 'unauthenticated', status: 401, cost: 0 }],
    ['strings that need escaping', { ...base, subject: 'a"b\\c\n\u2028\u0000é😀', method: 'PROPFIND' }],
    ['non-finite numbers (written as null, as JSON.stringify does)', { ...base, durationMs: Number.NaN, bytesOut: Number.POSITIVE_INFINITY }],
    ['fractional and large numbers', { ...base, durationMs: 0.001, bytesIn: 2 ** 40, cost: 2.5 }],
  ])('%s: identical to JSON.stringify', (_name, event) => {
    const line = serializeEvent(event as RequestUsageEvent);
    expect(line).toBe(JSON.stringify(event));
    expect(JSON.parse(line)).toEqual(JSON.parse(JSON.stringify(event)));
  });

  it('an incomplete request event still makes valid JSON (missing fields as null)', () => {
    const line = serializeEvent({ id: 'x', ts: base.ts, type: 'request', tenantId: 'acme' } as unknown as RequestUsageEvent);
    expect(JSON.parse(line)).toMatchObject({ id: 'x', tenantId: 'acme', projectId: null, status: null });
  });

  it('other event types go through JSON.stringify unchanged', () => {
    const warning = { id: 'qw:acme:daily:2026-11-25:0.8', ts: base.ts, type: 'quota_warning', tenantId: 'acme', plan: 'pro', quota: 'daily', threshold: 0.8, used: 80, limit: 100, period: '2026-11-25' };
    expect(serializeEvent(warning)).toBe(JSON.stringify(warning));
  });
});
