// The gRPC floor: a bare node:http2 passthrough (h2c in, one h2c session out), streams piped both ways, trailers passed on. Nothing else.
import http2 from 'node:http2';

const target = `http://127.0.0.1:${process.argv[2]}`;
let session = null;
const upstream = () => {
  if (session === null || session.closed || session.destroyed) {
    // Nagle off, as on every other hop of the bench.
    session = http2.connect(target, { noDelay: true });
    session.on('error', () => {});
  }
  return session;
};
const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
server.on('connection', (socket) => socket.setNoDelay(true));
server.on('stream', (stream, headers) => {
  const out = {};
  for (const name of Object.keys(headers)) if (name !== ':scheme' && name !== ':authority') out[name] = headers[name];
  const up = upstream().request(out);
  stream.pipe(up);
  up.on('response', (h, flags) => {
    if (stream.destroyed) return up.close(http2.constants.NGHTTP2_CANCEL);
    if (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) return stream.respond(h, { endStream: true });
    stream.respond(h, { waitForTrailers: true });
    up.pipe(stream);
  });
  up.on('trailers', (t) => stream.once('wantTrailers', () => stream.destroyed || stream.sendTrailers(t)));
  up.on('error', () => stream.destroy());
  stream.on('error', () => up.destroy());
  stream.on('close', () => up.destroyed || up.close(http2.constants.NGHTTP2_CANCEL));
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
