// The soaked system, all on loopback: a redis-server on a free port (restartable), an upstream that
// answers HTTP, holds requests on demand and speaks just enough WebSocket for churn, and the proxy as
// a child process (`dist/main.js serve`) whose config the soak rewrites and reloads with SIGHUP.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { generateApiKey } from '../../dist/auth/api-key-format.js';
import { spawnRedisServer } from '../redis-server.js';

export const HOLD_HEADER = 'x-soak-hold';
/** The tenant whose plan has `concurrency: PROBE_CONCURRENCY`: "leases held" is read from its ability to admit that many. */
export const PROBE_CONCURRENCY = 4;

export async function freePort() {
  const server = createNetServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** redis-server on one free port, killed (SIGKILL: data gone, as in a crash) and started again on the same port. */
export class Redis {
  static async start() {
    const r = new Redis();
    r.port = await freePort();
    await r.up();
    return r;
  }
  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }
  async up() {
    const { child, ready } = spawnRedisServer(this.port, false);
    this.child = child;
    await ready;
  }
  async kill() {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
}

/** An upstream: 200 JSON; `/slow` after 200 ms; held while HOLD_HEADER carries its token; WebSocket: 101, one frame, then the close handshake. */
export async function startUpstream() {
  const token = randomBytes(8).toString('hex');
  const held = [];
  const sockets = new Set();
  const server = createHttpServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.headers[HOLD_HEADER] === token) return void held.push(res);
      const answer = () => res.writeHead(200, { 'content-type': 'application/json', 'content-length': 11 }).end('{"ok":true}');
      if (req.url.includes('/slow')) setTimeout(answer, 200);
      else answer();
    });
  });
  server.on('upgrade', (req, socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    socket.write(Buffer.from([0x81, 2, 0x68, 0x69])); // text frame "hi"
    // The client's close frame: answer it, then close (the server closes first, as RFC 6455 says).
    socket.once('data', () => socket.end(Buffer.from([0x88, 0])));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    token,
    held,
    /** Upstream ends of WebSocket tunnels still open. */
    tunnels: () => sockets.size,
    release: () => held.splice(0).forEach((res) => res.writeHead(200, { 'content-length': 0 }).end()),
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.closeAllConnections();
        server.close(resolve);
      }),
  };
}

export function makeKeys() {
  return {
    acme: generateApiKey({ env: 'live', id: 'ak_soak_acme' }),
    limited: generateApiKey({ env: 'live', id: 'ak_soak_limited' }),
    probe: generateApiKey({ env: 'live', id: 'ak_soak_probe' }),
  };
}

/** The proxy's config; `generation` changes a harmless value so each reload is a real change. */
export function configYaml({ dir, redisUrl, upstream, keys, generation }) {
  return `
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
logging: { level: info, sample2xx: 0 }
store: { redis: "${redisUrl}", keyPrefix: "soak:", commandTimeoutMs: 100, failureMode: open }
plans:
  open: { rate: null, quota: null, concurrency: null }
  limited: { rate: { perSecond: 20, burst: 20 }, quota: { daily: 1000000 }, concurrency: 4 }
  probe: { rate: null, quota: null, concurrency: ${PROBE_CONCURRENCY} }
tenants:
  - { id: acme, plan: open }
  - { id: limited, plan: limited }
  - { id: probe, plan: probe }
apiKeys:
  - { id: ak_soak_acme, tenant: acme, hash: "${keys.acme.hash}", scopes: ["*"] }
  - { id: ak_soak_limited, tenant: limited, hash: "${keys.limited.hash}", scopes: ["*"] }
  - { id: ak_soak_probe, tenant: probe, hash: "${keys.probe.hash}", scopes: ["*"] }
routes:
  - { name: api, match: { pathPrefix: /api }, upstream: "${upstream}", permission: "api:use", timeoutMs: ${20_000 + (generation % 2)} }
  - { name: public, match: { pathPrefix: /public }, upstream: "${upstream}", auth: [none] }
  - { name: ws, match: { pathPrefix: /ws }, upstream: "${upstream}", permission: "api:use" }
  - { name: nows, match: { pathPrefix: /nows }, upstream: "${upstream}", permission: "api:use", websocket: false }
usage:
  sinks:
    - { type: file, path: "${join(dir, 'usage.ndjson')}", fsync: false, flushMs: 200, maxBytes: null }
    - { type: redis-stream, stream: "soak:usage", maxLen: 100000, url: "${redisUrl}", flushMs: 200, timeoutMs: 500 }
  spoolDir: "${join(dir, 'spool')}"
  replay: { minBackoffMs: 200, maxBackoffMs: 2000 }
shutdownGraceMs: 5000
`;
}

/** `node dist/main.js serve`; resolves once it logs "tenantgate listening". Counts error-level log lines after that. */
export async function startProxy(root, configFile) {
  const child = spawn(process.execPath, [join(root, 'dist/main.js'), 'serve', '-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const proxy = { child, errorLines: 0, lastError: null };
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += c));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  proxy.exited = exited;
  await new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (chunk) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.includes('"level":5') && !line.includes('tenantgate listening')) continue;
        let parsed;
        try {
          parsed = JSON.parse(line);
        } catch {
          continue;
        }
        if (parsed.msg === 'tenantgate listening') {
          proxy.port = parsed.data.port;
          proxy.adminPort = parsed.admin.port;
          resolve();
        } else if (parsed.level >= 50 && parsed.requestId === undefined) {
          proxy.errorLines++;
          proxy.lastError = parsed.msg;
        }
      }
    });
    void exited.then((code) => reject(new Error(`proxy exited with ${code}: ${stderr}`)));
  });
  return proxy;
}

/** RSS (bytes) and open file descriptors of a process, from /proc. */
export function processStats(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
  return { rssMb: Math.round(rssKb / 102.4) / 10, fds: readdirSync(`/proc/${pid}/fd`).length };
}

export async function metrics(adminPort) {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const read = (re) => {
    let total = 0;
    for (const m of text.matchAll(re)) total += Number(m[1]);
    return total;
  };
  return {
    inflight: read(/^tenantgate_inflight_requests (\d+)/gm),
    reloadsOk: read(/^tenantgate_config_reloads_total\{result="(?:success|ok)"\} (\d+)/gm),
    reloadsFailed: read(/^tenantgate_config_reloads_total\{result="(?:failure|failed|error|rejected)"\} (\d+)/gm),
    events: {
      fileSent: read(/^tenantgate_usage_events_total\{sink="file-0",outcome="sent"\} (\d+)/gm),
      streamSent: read(/^tenantgate_usage_events_total\{sink="redis-stream-0",outcome="sent"\} (\d+)/gm),
      streamSpooled: read(/^tenantgate_usage_events_total\{sink="redis-stream-0",outcome="spooled"\} (\d+)/gm),
      streamReplayed: read(/^tenantgate_usage_events_total\{sink="redis-stream-0",outcome="replayed"\} (\d+)/gm),
    },
  };
}

export function rewriteConfig(file, options) {
  writeFileSync(file, configYaml(options));
}
