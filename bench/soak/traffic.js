// Mixed traffic for the soak, paced to a target rate by a few workers: API-key requests, the public
// route, a rate- and concurrency-limited tenant (429s), bad keys (401s), slow requests the client
// aborts midway, uploads, WebSocket churn (upgrade, one frame each way, close) and WebSocket attempts
// on a `websocket: false` route.
import { request } from 'node:http';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { HOLD_HEADER, PROBE_CONCURRENCY } from './system.js';

/** What the client did, by outcome; every entry is one request the proxy should account (one usage event). */
export class Tally {
  constructor() {
    this.byOutcome = {};
    this.requests = 0;
  }
  note(outcome) {
    this.requests++;
    this.byOutcome[outcome] = (this.byOutcome[outcome] ?? 0) + 1;
  }
}

function http(port, { method = 'GET', path, headers = {}, body, abortAfterMs }) {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(String(res.statusCode)));
      res.on('error', () => resolve('reset'));
    });
    req.on('error', () => resolve(abortAfterMs === undefined ? 'error' : 'aborted'));
    if (abortAfterMs !== undefined) setTimeout(() => req.destroy(), abortAfterMs);
    req.end(body);
  });
}

/** Upgrade, read the server's frame, send a masked close frame, wait for the close. */
function websocket(port, key, path = '/ws/chat') {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let buf = '';
    let outcome = 'ws-error';
    const timer = setTimeout(() => socket.destroy(), 5000);
    socket.on('data', (chunk) => {
      buf += chunk.toString('latin1');
      if (outcome === 'ws-error' && buf.startsWith('HTTP/1.1 101') && buf.includes('\r\n\r\n\x81\x02hi')) {
        outcome = 'ws-101';
        socket.write(Buffer.from([0x88, 0x80, 1, 2, 3, 4])); // close, masked, empty
      } else if (!buf.startsWith('HTTP/1.1 101') && buf.includes('\r\n\r\n')) outcome = `ws-${buf.slice(9, 12)}`;
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(outcome);
    });
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: soak\r\nX-API-Key: ${key}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        `Sec-WebSocket-Key: ${Buffer.from(String(Math.random())).toString('base64').slice(0, 22)}==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  });
}

/** One action, drawn by weight. */
function action(port, keys, n) {
  // Now and then a client tries WebSocket on a route that refuses it (400): that refusal must free its slot too.
  if (n % 40 === 39) return websocket(port, keys.probe.key, '/nows/chat');
  const roll = n % 20;
  const key = (k) => ({ 'x-api-key': keys[k].key });
  if (roll < 8) return http(port, { path: `/api/orders/${n % 97}`, headers: key('acme') });
  if (roll < 11) return http(port, { path: '/public/status' });
  if (roll < 14) return http(port, { path: '/api/limited', headers: key('limited') });
  if (roll === 14) return http(port, { path: '/api/x', headers: { authorization: `Bearer ${keys.acme.key.slice(0, -3)}abc` } });
  if (roll === 15) return http(port, { path: '/api/slow', headers: key('probe'), abortAfterMs: 50 });
  if (roll === 16) return http(port, { method: 'POST', path: '/api/upload', headers: { ...key('acme'), 'content-type': 'application/json' }, body: JSON.stringify({ n, pad: 'x'.repeat(n % 4000) }) });
  return websocket(port, roll === 17 ? keys.probe.key : keys.acme.key);
}

/**
 * Runs `workers` loops until `until()` is true, together at most `rps` actions a second and `maxRequests` in all.
 * Pauses while `paused()` (a probe or a sample is running).
 */
export async function drive({ port, keys, workers, rps, maxRequests, until, paused, tally }) {
  let n = 0;
  const gap = (1000 * workers) / rps;
  const loop = async () => {
    while (!until() && n < maxRequests) {
      if (paused()) {
        await sleep(20);
        continue;
      }
      const started = Date.now();
      tally.note(await action(port(), keys, n++));
      const left = gap - (Date.now() - started);
      if (left > 0) await sleep(left);
    }
  };
  await Promise.all(Array.from({ length: workers }, loop));
}

/**
 * Leases held, read from outside: PROBE_CONCURRENCY requests of the concurrency-limited tenant, held
 * by the upstream at once. Returns how many were admitted (all of them when no slot leaked).
 */
export async function probeLeases(port, upstream, key, tally) {
  const headers = { 'x-api-key': key, [HOLD_HEADER]: upstream.token };
  const answers = Array.from({ length: PROBE_CONCURRENCY }, (_, i) => http(port, { path: `/api/hold/${i}`, headers }));
  let settled = 0;
  for (const a of answers) void a.then(() => settled++);
  const until = Date.now() + 5000;
  while (upstream.held.length + settled < PROBE_CONCURRENCY && Date.now() < until) await sleep(20);
  const admitted = upstream.held.length;
  upstream.release();
  for (const outcome of await Promise.all(answers)) tally.note(`probe-${outcome}`);
  return admitted;
}
