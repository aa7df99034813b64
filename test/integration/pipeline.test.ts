/**
 * What the pipeline's runner guarantees on every path (src/pipeline.ts):
 * a request that admission let in gives back its concurrency slot exactly
 * once however it ends — refused after admission, tunnelled, failed
 * upstream — in the memory store and in Redis.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { errorCodeOf, RawConnection, send } from '../helpers/fwd-net.js';
import { newKey, startWsUpstream, upgradeRequest, type WsUpstream } from '../helpers/fwd-ws.js';
import { RedisServer } from '../helpers/redis.js';
import { rawJson, rawRequest, startProxy, startUpstream, type RunningProxy, type Upstream } from '../helpers/servers.js';

const key = generateApiKey({ env: 'live', id: 'ak_pipe' });
const CONCURRENCY = 3;

function config(upstream: string, wsUpstream: string, store = ''): string {
  return `${store}
plans:
  small: { concurrency: ${CONCURRENCY} }
tenants: [{ id: acme, plan: small }]
apiKeys:
  - { id: ak_pipe, tenant: acme, hash: "${key.hash}", scopes: ["*"] }
routes:
  - { name: nows, match: { pathPrefix: /nows }, upstream: "${upstream}", auth: [apiKey], websocket: false }
  - { name: ws, match: { pathPrefix: /ws }, upstream: "${wsUpstream}", auth: [apiKey] }
  - { name: gone, match: { pathPrefix: /gone }, upstream: "http://127.0.0.1:1", auth: [apiKey] }
  - { name: api, match: { pathPrefix: / }, upstream: "${upstream}", auth: [apiKey] }
`;
}

let upstream: Upstream;
let ws: WsUpstream;
const held: (() => void)[] = [];
beforeAll(async () => {
  upstream = await startUpstream((req, res) => {
    if (req.url === '/hold') held.push(() => res.end('held'));
    else res.end('ok');
  });
  ws = await startWsUpstream();
});
afterAll(async () => {
  for (const release of held.splice(0)) release();
  await upstream.close();
  await ws.close();
});

/** Holds `CONCURRENCY` requests open, asks for one more, and lets them all go: the tenant's whole allowance must still be there. */
async function expectFullConcurrency(proxy: RunningProxy): Promise<void> {
  // The client's side may close before the proxy has seen it; the request ends when the proxy has.
  await expect.poll(() => proxy.gate.state.inflight, { timeout: 10_000 }).toBe(0);
  const before = held.length;
  const open = Array.from({ length: CONCURRENCY }, () => fetch(`${proxy.url}/hold`, { headers: { 'x-api-key': key.key } }));
  await expect.poll(() => held.length - before, { timeout: 10_000 }).toBe(CONCURRENCY);
  const extra = await fetch(`${proxy.url}/x`, { headers: { 'x-api-key': key.key } });
  expect(extra.status).toBe(429);
  expect((await extra.json()).error.code).toBe('concurrency_limited');
  for (const release of held.splice(before)) release();
  for (const res of await Promise.all(open)) expect(res.status).toBe(200);
}

const upgrade = (path: string, extra = `X-API-Key: ${key.key}\r\n`) => upgradeRequest(path, newKey(), extra);

describe.each([
  ['memory', null],
  ['redis', new RedisServer()],
] as const)('every admitted request releases its slot once (%s store)', (_name, redis) => {
  let proxy: RunningProxy;
  beforeAll(async () => {
    await redis?.start();
    const store = redis === null ? '' : `store: { redis: "${redis.url}", keyPrefix: "tg-pipe-${Date.now()}:" }`;
    proxy = await startProxy(config(upstream.url, ws.url, store));
  });
  afterAll(async () => {
    await proxy?.close();
    await redis?.kill();
  });
  afterEach(async () => expectFullConcurrency(proxy));

  it('WebSocket upgrades to a `websocket: false` route: 400 websocket_disabled, more of them than the limit, nothing forwarded', async () => {
    const before = upstream.requests.length;
    for (let i = 0; i < CONCURRENCY + 2; i++) {
      const res = await rawRequest(proxy.port, upgrade('/nows/chat'));
      expect(res.status).toBe(400);
      expect((rawJson(res) as { error: { code: string } }).error.code).toBe('bad_request');
    }
    expect(upstream.requests.length).toBe(before);
  });

  it('WebSocket tunnels that open and close', async () => {
    for (let i = 0; i < CONCURRENCY + 2; i++) {
      const conn = await RawConnection.open(proxy.port);
      await conn.write(upgrade('/ws/chat'));
      expect((await conn.readResponse({ head: true }))?.status).toBe(101);
      conn.destroy();
    }
  });

  it('WebSocket upgrades whose upstream is down, and HTTP requests whose upstream is down: 502', async () => {
    for (let i = 0; i < CONCURRENCY + 1; i++) {
      expect((await rawRequest(proxy.port, upgrade('/gone/chat'))).status).toBe(502);
      const res = await send(proxy.port, { path: '/gone/x', headers: { 'x-api-key': key.key } });
      expect(res.status).toBe(502);
      expect(errorCodeOf(res)).toBe('upstream_unavailable');
    }
  });

  it('clients that leave while their request is held upstream', async () => {
    for (let i = 0; i < CONCURRENCY + 1; i++) {
      const before = held.length;
      const conn = await RawConnection.open(proxy.port);
      await conn.write(`GET /hold HTTP/1.1\r\nHost: x\r\nX-API-Key: ${key.key}\r\n\r\n`);
      await expect.poll(() => held.length - before, { timeout: 10_000 }).toBe(1);
      conn.destroy();
      await expect.poll(() => proxy.gate.state.inflight, { timeout: 10_000 }).toBe(0);
      held.splice(before)[0]!();
    }
  });
});
