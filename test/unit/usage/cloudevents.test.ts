/**
 * The CloudEvents encoding (SPEC §16): every envelope is validated by the
 * CNCF `cloudevents` SDK (strict), `data` is the §7 event unchanged, and the
 * subject, type and source follow the options. Also the NATS subject token
 * and the schema's checks of the new sink keys.
 */
import { CloudEvent } from 'cloudevents';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../../src/config/schema.js';
import { AUDIT_TYPE, createCloudEventEncoder, encodeBatch, QUOTA_WARNING_TYPE, type CloudEventOptions } from '../../../src/usage/cloudevents.js';
import { subjectToken } from '../../../src/usage/sinks/nats.js';
import { makeEvents } from '../../helpers/usage-sinks.js';

const OPTS: CloudEventOptions = { eventType: 'tenantgate.request', subject: 'tenant', source: '//tenantgate/pod-1' };

function encodeOne(event: object, opts: Partial<typeof OPTS> = {}): CloudEvent<Record<string, unknown>> {
  const ce = createCloudEventEncoder({ ...OPTS, ...opts })(JSON.stringify(event));
  expect(ce).not.toBeNull();
  // strict: the SDK throws a ValidationError for anything not CloudEvents 1.0.
  return new CloudEvent<Record<string, unknown>>(JSON.parse(ce!.json) as Record<string, unknown>, true);
}

describe('CloudEvents encoding', () => {
  it('a request event: spec-valid envelope, its id, time and route source, and the §7 event as data', () => {
    const [event] = makeEvents(1, 'r', { projectId: 'web' });
    const ce = encodeOne(event!);
    expect(ce.validate()).toBe(true);
    expect({ specversion: ce.specversion, type: ce.type, id: ce.id, time: ce.time, source: ce.source, subject: ce.subject, datacontenttype: ce.datacontenttype }).toEqual({
      specversion: '1.0',
      type: 'tenantgate.request',
      id: event!.id,
      time: event!.ts,
      source: '//tenantgate/pod-1/routes/api',
      subject: 'acme',
      datacontenttype: 'application/json',
    });
    expect(ce.data).toEqual(event);
  });

  it('subject: tenant, <tenant>/<project> or the key id, each falling back to the tenant; no tenant → "_"', () => {
    const [withAll] = makeEvents(1, 's', { projectId: 'web', apiKeyId: 'ak_9' });
    const [bare] = makeEvents(1, 's', { projectId: null, apiKeyId: null });
    const [anonymous] = makeEvents(1, 's', { tenantId: null, projectId: null, apiKeyId: null, route: null });
    expect(encodeOne(withAll!, { subject: 'project' }).subject).toBe('acme/web');
    expect(encodeOne(withAll!, { subject: 'key' }).subject).toBe('ak_9');
    expect(encodeOne(bare!, { subject: 'project' }).subject).toBe('acme');
    expect(encodeOne(bare!, { subject: 'key' }).subject).toBe('acme');
    const anon = encodeOne(anonymous!);
    expect(anon.subject).toBe('_');
    expect(anon.source).toBe('//tenantgate/pod-1');
  });

  it('quota warnings and audit events have types of their own; an audit event is about the tenant it changed', () => {
    const warning = { id: 'q1', ts: '2026-11-25T12:00:00.000Z', type: 'quota_warning', tenantId: 'acme', plan: 'pro', quota: 'daily', threshold: 0.8, used: 80, limit: 100, period: '2026-11-25' };
    const keyAudit = { id: 'a1', ts: '2026-11-25T12:00:00.000Z', type: 'audit', actor: 'admin', action: 'key.revoke', target: { type: 'key', id: 'ak_1', tenant: 'globex' }, before: null, after: null };
    const tenantAudit = { ...keyAudit, id: 'a2', action: 'tenant.create', target: { type: 'tenant', id: 'initech' } };
    expect(encodeOne(warning)).toMatchObject({ type: QUOTA_WARNING_TYPE, subject: 'acme' });
    expect(encodeOne(keyAudit)).toMatchObject({ type: AUDIT_TYPE, subject: 'globex' });
    expect(encodeOne(tenantAudit, { eventType: 'acme.api.call' })).toMatchObject({ type: AUDIT_TYPE, subject: 'initech' });
    expect(encodeOne(makeEvents(1)[0]!, { eventType: 'acme.api.call' }).type).toBe('acme.api.call');
  });

  it('a batch keeps order and unique ids, and leaves out a line cut short', () => {
    const events = makeEvents(50, 'b');
    const lines = events.map((e) => JSON.stringify(e));
    lines.splice(10, 0, lines[10]!.slice(0, 40));
    const out = encodeBatch(lines, createCloudEventEncoder(OPTS)).map((j) => new CloudEvent(JSON.parse(j) as Record<string, unknown>, true));
    expect(out.map((e) => e.id)).toEqual(events.map((e) => e.id));
  });
});

describe('NATS subject token', () => {
  it('keeps plain ids, percent-encodes dots, wildcards and %, and names no tenant "_"', () => {
    expect(subjectToken('acme')).toBe('acme');
    expect(subjectToken('acme:eu-1_x')).toBe('acme:eu-1_x');
    expect(subjectToken('acme.eu')).toBe('acme%2Eeu');
    expect(subjectToken('a*b>c%d e')).toBe('a%2Ab%3Ec%25d%20e');
    expect(subjectToken(null)).toBe('_');
  });
});

describe('sink schema', () => {
  const parse = (sinks: unknown[]) => configSchema.shape.usage.safeParse({ sinks });
  const messages = (sinks: unknown[]) => parse(sinks).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`) ?? [];

  it('format cloudevents fills in the defaults; other formats carry none', () => {
    const ok = parse([{ type: 'http', url: 'http://om/api/v1/events', format: 'cloudevents' }, { type: 'file', path: 'u.ndjson' }]);
    expect(ok.success).toBe(true);
    expect(ok.data!.sinks.map((s) => s.cloudevents)).toEqual([{ eventType: 'tenantgate.request', subject: 'tenant', source: null }, null]);
  });

  it('cloudevents keys without format cloudevents, and a nats sink without url or stream, are errors', () => {
    expect(messages([{ type: 'http', url: 'http://om/e', subject: 'key' }])).toEqual(['sinks.0.subject: subject applies only with format: cloudevents']);
    expect(messages([{ type: 'nats' }])).toHaveLength(2);
    expect(messages([{ type: 'nats' }]).map((m) => m.split(':')[0])).toEqual(['sinks.0.url', 'sinks.0.stream']);
    expect(messages([{ type: 'nats', url: 'http://x:4222', stream: 'A.B', subjectPrefix: 'usage.*' }])).toEqual([
      'sinks.0.url: must be a nats:// or tls:// URL (host:port, no path)',
      'sinks.0.stream: must be a JetStream stream name (no spaces, . * > / \\)',
      'sinks.0.subjectPrefix: must be NATS subject tokens (letters, digits, _ -) separated by dots',
    ]);
  });
});
