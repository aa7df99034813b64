// The HTTP/2 scenarios: h2 over TLS (ALPN) through a bare node:http2 passthrough (servers/bare-h2.js) and
// through tenantgate's full pipeline (`listen.tls` + `listen.http2`), both to the same HTTP/1.1 upstream,
// measured in the same run. Neither wrk nor autocannon speaks h2: the load generator is h2load (nghttp2-client),
// CONNECTIONS connections with H2_STREAMS streams each. Without h2load these rows are left out, and said so.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const H2 = 'h2 (TLS)';
/** Streams in flight per connection: 1, so the rows compare with the HTTP/1.1 ones at the same concurrency. */
const H2_STREAMS = 1;

/** A self-signed certificate for 127.0.0.1 (the load generator does not verify it). */
function certificate(tempDirs) {
  const dir = mkdtempSync(join(tmpdir(), 'tenantgate-bench-h2-'));
  tempDirs.push(dir);
  const cert = join(dir, 'tls.crt');
  const key = join(dir, 'tls.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=bench', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert, key };
}

/** Percentile of a sorted list. */
const pct = (sorted, p) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]);

/** One h2load run: req/s and latencies (from its per-request log); errors: failed, errored and timed-out requests and non-2xx answers. */
function runH2load(url, seconds, headers, connections, tempFile) {
  const log = tempFile(`h2load-${Date.now()}.log`, '');
  const headerArgs = Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  const out = execFileSync('h2load', ['-c', String(connections), '-m', String(H2_STREAMS), '-D', String(seconds), '--log-file', log, ...headerArgs, url], { encoding: 'utf8' });
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)[1]);
  const [, , , , succeeded, failed, errored, timedOut] = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out).map(Number);
  const [, , s3xx, s4xx, s5xx] = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out).map(Number);
  const durationsMs = readFileSync(log, 'utf8').split('\n').filter((l) => l !== '').map((l) => Number(l.split('\t')[2]) / 1000).sort((a, b) => a - b);
  return { requests: succeeded, rps, p50: pct(durationsMs, 50), p99: pct(durationsMs, 99), p999: pct(durationsMs, 99.9), errors: failed + errored + timedOut + s3xx + s4xx + s5xx };
}

/** One GET over h2: 200 and the upstream's 100 bytes, else the run stops. */
function checkH2(port, headers) {
  return new Promise((resolve, reject) => {
    const session = connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    session.on('error', reject);
    const stream = session.request({ ':path': '/bench', ...headers });
    let status = 0;
    let bytes = 0;
    stream.on('response', (h) => (status = h[':status']));
    stream.on('data', (c) => (bytes += c.length));
    stream.on('end', () => {
      session.close();
      if (status === 200 && bytes === 100 && session.alpnProtocol === 'h2') resolve();
      else reject(new Error(`h2 check on ${port}: status ${status}, ${bytes} bytes, ALPN ${session.alpnProtocol}`));
    });
    stream.on('error', reject);
  });
}

/**
 * [name, start] entries like run.js's. `h`: { startServer, tenantgate, upstream, fullStore, apiKeyHeaders,
 * tempDirs, tempFile, HERE, connections }. Each scenario brings its own `load` (h2load) and `check`.
 */
export function h2Scenarios(h) {
  if (spawnSync('sh', ['-c', 'command -v h2load']).status !== 0) {
    process.stderr.write('bench: h2load is not on PATH, no h2 rows (apt-get install nghttp2-client)\n');
    return [];
  }
  let tls = null;
  const cert = () => (tls ??= certificate(h.tempDirs));
  const withLoad = (s, headers) => ({
    ...s,
    headers,
    load: (seconds) => runH2load(`https://127.0.0.1:${s.port}/bench`, seconds, headers, h.connections, h.tempFile),
    check: () => checkH2(s.port, headers),
  });
  return [
    [`${H2}: bare node:http2 passthrough`, async (n) => withLoad(await h.startServer(n, [join(h.HERE, 'servers/bare-h2.js'), String(h.upstream.port), cert().cert, cert().key], 0), {})],
    ...(h.fullStore
      ? [[`${H2}: tenantgate (full pipeline)`, async (n) => withLoad(await h.tenantgate(n, 'apiKey', h.apiKeyHeaders, { ...h.fullStore, prefix: 'h2:' }, { tls: cert(), tag: 'h2' }), h.apiKeyHeaders)]]
      : []),
  ];
}

export function h2Ratios(rpsOf) {
  return { [`${H2}: full pipeline / bare node:http2 passthrough`]: rpsOf(`${H2}: tenantgate (full pipeline)`) / rpsOf(`${H2}: bare node:http2 passthrough`) };
}
