// Floor 1: a bare http-proxy-3 web() passthrough, keep-alive to the upstream, nothing else.
import http from 'node:http';
import { createProxyServer } from 'http-proxy-3';

const target = `http://127.0.0.1:${process.argv[2]}`;
const proxy = createProxyServer({ target, agent: new http.Agent({ keepAlive: true, maxSockets: 256 }) });
proxy.on('error', (_err, _req, res) => res.destroy?.());
const server = http.createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
