// The gRPC bench upstream: h2c, every call answered at once with one 2-byte message and grpc-status 0 (gRPC's wire format, no library cost).
import http2 from 'node:http2';

const MESSAGE = Buffer.from([0, 0, 0, 0, 2, 0x6f, 0x6b]); // uncompressed, length 2, "ok"
const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
server.on('connection', (socket) => socket.setNoDelay(true));
server.on('stream', (stream) => {
  stream.on('data', () => {});
  stream.on('end', () => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(MESSAGE);
  });
  stream.on('error', () => {});
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
