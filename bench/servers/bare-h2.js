// The h2 floor: a bare node:http2 TLS server (h2 by ALPN) that forwards each stream to the upstream over
// HTTP/1.1 with a keep-alive node:http Agent: no header filtering, no routing, nothing else.
// argv: <upstream port> <cert file> <key file>
import http from 'node:http';
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';

const [upstreamPort, certFile, keyFile] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']);

const server = http2.createSecureServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (req, res) => {
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) if (k[0] !== ':') headers[k] = v;
  const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers, agent }, (upRes) => {
    const out = {};
    for (const [k, v] of Object.entries(upRes.headers)) if (!HOP.has(k)) out[k] = v;
    res.writeHead(upRes.statusCode, out);
    upRes.pipe(res);
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
