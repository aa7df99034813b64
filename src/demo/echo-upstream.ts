/**
 * The bundled echo upstream: a stand-in for a legacy service that knows
 * nothing about tenants. It answers every request with what it received, so
 * the demo shows exactly which headers the proxy injected. `/bench` answers a
 * fixed 100-byte JSON body (the benchmark's upstream).
 */
import { createServer, type Server } from 'node:http';

const BENCH_BODY = Buffer.from(JSON.stringify({ ok: true, service: 'echo', padding: 'x'.repeat(59) }));

export function createEchoUpstream(): Server {
  return createServer((req, res) => {
    if (req.url === '/bench') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': BENCH_BODY.length });
      res.end(BENCH_BODY);
      return;
    }
    let bytes = 0;
    req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    req.on('end', () => {
      const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyBytes: bytes }, null, 2);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
}
