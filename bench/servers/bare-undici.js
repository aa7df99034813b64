// Floor 2: a bare undici Pool.stream passthrough (no header filtering, no routing, nothing else).
import http from 'node:http';
import { Pool } from 'undici';

const pool = new Pool(`http://127.0.0.1:${process.argv[2]}`, { connections: 256 });
const server = http.createServer((req, res) => {
  const body = req.headers['content-length'] || req.headers['transfer-encoding'] ? req : null;
  pool.stream(
    { path: req.url, method: req.method, headers: req.headers, body },
    ({ statusCode, headers }) => {
      res.writeHead(statusCode, headers);
      return res;
    },
    (err) => {
      if (err) res.destroy();
    },
  );
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
