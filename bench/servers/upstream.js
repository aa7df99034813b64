// The benchmark's upstream: the bundled echo upstream (its GET /bench answers 100 bytes of JSON),
// plus POST /bench for the large-body scenarios: it reads the whole body, THEN answers the same
// 100 bytes, with the byte count in x-bench-body-bytes (the bench checks that each proxy streamed
// all of it). The echo upstream itself answers /bench at once, whatever the method.
import http from 'node:http';
import { createEchoUpstream } from '../../dist/demo/echo-upstream.js';

const BENCH_BODY = Buffer.from(JSON.stringify({ ok: true, service: 'echo', padding: 'x'.repeat(59) }));
const echo = createEchoUpstream().listeners('request')[0]; // its handler; that server never listens

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/bench') return echo(req, res);
  let bytes = 0;
  req.on('data', (chunk) => (bytes += chunk.length));
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': BENCH_BODY.length, 'x-bench-body-bytes': bytes });
    res.end(BENCH_BODY);
  });
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
