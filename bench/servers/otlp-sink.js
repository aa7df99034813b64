// The tracing rows' collector: accepts every OTLP/HTTP export (POST), reads and discards it, answers 200 `{}`;
// nothing is decoded, so it costs the load generator's CPU as little as a collector can.
import http from 'node:http';

const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 }).end('{}'));
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
