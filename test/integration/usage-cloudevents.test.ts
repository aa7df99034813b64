/**
 * Usage events as CloudEvents (issue #34, SPEC §16) through real proxy
 * processes: an http sink in `format: cloudevents` posting to an OpenMeter
 * ingest receiver (every event validated by the CNCF SDK there), killed and
 * restarted mid-load and answering 503 for a while; a file sink in the same
 * format beside it; a SIGKILL with a spool on disk, replayed with the same ids;
 * quota warnings and admin audit events as CloudEvents of their own types.
 */
import { mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudEvent } from 'cloudevents';
import { afterEach, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { admin, ADMIN_TOKEN } from '../helpers/admin-api.js';
import { OpenMeterReceiver } from '../helpers/openmeter.js';
import { spawnProxy, startUpstream, type SpawnedProxy } from '../helpers/servers.js';
import { dedupe, eventually, spoolIds } from '../helpers/usage-sinks.js';

const TENANTS = ['acme', 'globex', 'initech'] as const;
const keys = TENANTS.map((t, i) => generateApiKey({ env: 'live', id: `ak_ce${i}` }));
const TOKEN = 'om-test-token-0123456789';

function config(upstream: string, sinks: string, spoolDir: string, plan = '{ rate: { perSecond: 10000, burst: 10000 } }'): string {
  return `
logging: { level: info, sample2xx: 0 }
plans: { metered: ${plan} }
tenants: [${TENANTS.map((t) => `{ id: ${t}, plan: metered }`).join(', ')}]
apiKeys:
${TENANTS.map((t, i) => `  - { id: ak_ce${i}, tenant: ${t}, project: web, hash: "${keys[i]!.hash}", scopes: ["*"] }`).join('\n')}
routes:
  - { name: api, match: { pathPrefix: /api }, upstream: "${upstream}", auth: [apiKey], cost: 2 }
usage:
  spoolDir: "${spoolDir}"
  spool: { fsyncMs: 20 }
  replay: { minBackoffMs: 50, maxBackoffMs: 300 }
  sinks:
${sinks}
`;
}

const httpSink = (url: string) =>
  `    - { type: http, url: "${url}", format: cloudevents, subject: tenant, source: "//tenantgate/test", headers: { authorization: "Bearer \${OPENMETER_TOKEN}" }, flushMs: 20, batchSize: 25, retries: 1, backoffMs: 20, timeoutMs: 1000 }`;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

async function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'tg-usage-ce-'));
  const upstream = await startUpstream((_req, res) => res.end('{"ok":true}'));
  cleanups.push(() => upstream.close());
  const receiver = new OpenMeterReceiver(TOKEN);
  await receiver.start();
  cleanups.push(() => receiver.stop());
  return { dir, upstream, receiver, spoolDir: join(dir, 'spool') };
}

async function proxy(yaml: string): Promise<SpawnedProxy> {
  const p = await spawnProxy(yaml, { OPENMETER_TOKEN: TOKEN });
  cleanups.push(() => p.stop('SIGKILL'));
  return p;
}

/** `n` requests per tenant, interleaved, ten at a time. */
async function load(url: string, n: number): Promise<void> {
  for (let i = 0; i < n * TENANTS.length; i += 10) {
    await Promise.all(
      Array.from({ length: Math.min(10, n * TENANTS.length - i) }, async (_, j) => {
        const res = await fetch(`${url}/api/item`, { headers: { 'x-api-key': keys[(i + j) % TENANTS.length]!.key } });
        await res.arrayBuffer();
        expect(res.status).toBe(200);
      }),
    );
  }
}

async function spooled(adminUrl: string): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  return Number(/tenantgate_usage_events_total\{sink="http-0",outcome="spooled"\} (\d+)/.exec(text)?.[1] ?? 0);
}

describe('usage events as CloudEvents', () => {
  it('an OpenMeter receiver killed, restarted and answering 503 mid-load: every event arrives once per id, per-tenant totals match', async () => {
    const { dir, upstream, receiver, spoolDir } = await setup();
    const file = join(dir, 'usage.ce.ndjson');
    const p = await proxy(config(upstream.url, `${httpSink(receiver.url)}\n    - { type: file, path: "${file}", format: cloudevents, subject: project, flushMs: 20 }`, spoolDir));

    await load(p.url, 40);
    await receiver.stop();
    await load(p.url, 40);
    await receiver.start();
    receiver.mode = 'fail';
    await load(p.url, 40);
    await eventually(() => receiver.refused.length > 0, 'a batch answered 503');
    receiver.mode = 'ok';
    await load(p.url, 40);

    const total = 160 * TENANTS.length;
    await eventually(() => receiver.events.size >= total, `${total} distinct events at the receiver`, 30_000);
    expect(receiver.problems).toEqual([]);
    expect(receiver.events.size).toBe(total);
    expect(Object.fromEntries(receiver.perSubject())).toEqual(Object.fromEntries(TENANTS.map((t) => [t, 160])));
    for (const e of receiver.events.values()) {
      expect(e).toMatchObject({ specversion: '1.0', type: 'tenantgate.request', source: '//tenantgate/test/routes/api', datacontenttype: 'application/json' });
      expect(e.data).toMatchObject({ id: e.id, ts: e.time, tenantId: e.subject, route: 'api', outcome: 'forwarded', cost: 2 });
    }
    const cost = [...receiver.events.values()].reduce((sum, e) => sum + (e.data!.cost as number), 0);
    expect(cost).toBe(2 * total);
    expect(await spooled(p.adminUrl)).toBeGreaterThan(0);

    // The file sink's lines: the same ids, each a valid CloudEvent whose subject is <tenant>/<project>.
    expect(await p.stop('SIGTERM')).toBe(0);
    const lines = (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '');
    const fromFile = lines.map((l) => new CloudEvent<Record<string, unknown>>(JSON.parse(l) as Record<string, unknown>, true));
    expect(new Set(fromFile.map((e) => e.id))).toEqual(new Set(receiver.events.keys()));
    for (const e of fromFile) expect(e.subject).toBe(`${e.data!.tenantId as string}/web`);
  });

  it('SIGKILL with a spool on disk: the next process replays the same ids the first one tried', async () => {
    const { upstream, receiver, spoolDir } = await setup();
    receiver.mode = 'fail';
    const yaml = config(upstream.url, httpSink(receiver.url), spoolDir);
    const first = await proxy(yaml);
    await load(first.url, 30);
    await eventually(async () => (await spooled(first.adminUrl)) >= 90, '90 events spooled');
    await first.stop('SIGKILL');
    const onDisk = dedupe(await spoolIds(join(spoolDir, 'http-0')));
    expect(onDisk).toHaveLength(90);
    expect(receiver.refused.length).toBeGreaterThan(0);
    expect(receiver.events.size).toBe(0);

    receiver.mode = 'ok';
    await proxy(yaml);
    await eventually(() => receiver.events.size >= 90, 'the spool replayed by the next process', 30_000);
    expect(receiver.problems).toEqual([]);
    // Same ids: what the killed process tried (refused with 503) and spooled is what the next one delivered.
    expect(new Set(receiver.events.keys())).toEqual(new Set(onDisk));
    for (const id of receiver.refused) expect(receiver.events.has(id)).toBe(true);
  });

  it('quota warnings and admin audit events arrive as CloudEvents of their own types', async () => {
    const { dir, upstream, receiver, spoolDir } = await setup();
    const adminBlock = `admin: { host: 127.0.0.1, port: 0, token: "${ADMIN_TOKEN}", stateFile: "${join(dir, 'state.json')}" }\n`;
    // cost 2, daily 10: request 4 reaches 8 units (80 %), request 5 reaches 10 (past 95 %).
    const p = await proxy(adminBlock + config(upstream.url, httpSink(receiver.url), spoolDir, '{ quota: { daily: 10 } }'));
    for (let i = 0; i < 5; i++) await (await fetch(`${p.url}/api/x`, { headers: { 'x-api-key': keys[0]!.key } })).arrayBuffer();
    expect((await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'umbrella', plan: 'metered' })).status).toBe(201);

    const ofType = (type: string) => [...receiver.events.values()].filter((e) => e.type === type);
    await eventually(() => ofType('tenantgate.quota.warning').length >= 2 && ofType('tenantgate.admin.audit').length >= 1, 'warnings and the audit event');
    expect(receiver.problems).toEqual([]);
    const day = new Date().toISOString().slice(0, 10);
    expect(ofType('tenantgate.quota.warning').map((e) => [e.id, e.subject])).toEqual([
      [`qw:acme:daily:${day}:0.8`, 'acme'],
      [`qw:acme:daily:${day}:0.95`, 'acme'],
    ]);
    const [audit] = ofType('tenantgate.admin.audit');
    expect(audit).toMatchObject({ subject: 'umbrella', source: '//tenantgate/test', data: { type: 'audit', action: 'tenant.create' } });
    expect(ofType('tenantgate.request')).toHaveLength(5);
  });
});
