/**
 * A small gRPC service for the tests, with raw Buffer messages (no .proto):
 * one method of each streaming kind, one that answers an error status, and
 * one that never answers (deadlines, cancels). The server records what it
 * saw of each call: its metadata, and whether the client cancelled it.
 */
import * as grpc from '@grpc/grpc-js';

const raw = { requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };
const method = (name: string, requestStream: boolean, responseStream: boolean) => ({ path: `/echo.v1.Echo/${name}`, requestStream, responseStream, originalName: name, ...raw });

export const ECHO_SERVICE = {
  unary: method('Unary', false, false),
  serverStream: method('ServerStream', false, true),
  clientStream: method('ClientStream', true, false),
  bidi: method('Bidi', true, true),
  fail: method('Fail', false, false),
  hang: method('Hang', false, false),
  flood: method('Flood', false, true),
  drip: method('Drip', false, true),
} satisfies grpc.ServiceDefinition;

export interface SeenCall {
  method: string;
  metadata: Record<string, string>;
  /** Milliseconds the call had left when it arrived (from its grpc-timeout); null without a deadline. */
  deadlineLeftMs: number | null;
  cancelled: boolean;
}

export interface EchoServer {
  port: number;
  calls: SeenCall[];
  /** Messages the Flood call has handed to its stream so far (it waits for 'drain' when told to). */
  flooded: number;
  close(): Promise<void>;
}

function seen(calls: SeenCall[], name: string, call: { metadata: grpc.Metadata; getDeadline(): grpc.Deadline; on(event: 'cancelled', l: () => void): unknown }): SeenCall {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(call.metadata.getMap())) metadata[k] = String(v);
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  const record: SeenCall = { method: name, metadata, deadlineLeftMs: Number.isFinite(at) ? at - Date.now() : null, cancelled: false };
  call.on('cancelled', () => (record.cancelled = true));
  calls.push(record);
  return record;
}

export interface EchoServerOptions {
  /** Serve TLS with these PEMs (and require a client certificate when `ca` is given with `requireClientCert`). */
  tls?: { cert: Buffer; key: Buffer; ca?: Buffer; requireClientCert?: boolean };
}

export async function startEchoServer(options: EchoServerOptions = {}): Promise<EchoServer> {
  const calls: SeenCall[] = [];
  const server = new grpc.Server();
  const state = { flooded: 0 };
  server.addService(ECHO_SERVICE, {
    unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => {
      seen(calls, 'Unary', call);
      const head = new grpc.Metadata();
      head.set('x-upstream-head', 'from-upstream');
      call.sendMetadata(head);
      const trailer = new grpc.Metadata();
      trailer.set('x-upstream-trailer', 'done');
      done(null, Buffer.concat([Buffer.from('echo:'), call.request]), trailer);
    },
    serverStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      seen(calls, 'ServerStream', call);
      const n = Number(call.request.toString());
      for (let i = 0; i < n; i++) call.write(Buffer.from(`msg-${i}`));
      call.end();
    },
    clientStream: (call: grpc.ServerReadableStream<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => {
      seen(calls, 'ClientStream', call);
      const parts: Buffer[] = [];
      call.on('data', (b: Buffer) => parts.push(b));
      call.on('end', () => done(null, Buffer.from(`${parts.length}:${Buffer.concat(parts).length}`)));
    },
    bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      seen(calls, 'Bidi', call);
      call.on('data', (b: Buffer) => call.write(Buffer.from(b.toString().toUpperCase())));
      call.on('end', () => call.end());
    },
    fail: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => {
      seen(calls, 'Fail', call);
      const metadata = new grpc.Metadata();
      metadata.set('x-why', 'no such order');
      done({ code: grpc.status.NOT_FOUND, details: 'order 42 not found', metadata });
    },
    hang: (call: grpc.ServerUnaryCall<Buffer, Buffer>) => {
      seen(calls, 'Hang', call);
    },
    // One message, then silence: a deadline that passes mid-call.
    drip: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      seen(calls, 'Drip', call);
      call.write(Buffer.from('first'));
    },
    // The request names how many messages of how many KiB; each write waits for the stream to drain.
    flood: async (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      seen(calls, 'Flood', call);
      const [count, kib] = call.request.toString().split('x').map(Number) as [number, number];
      const chunk = Buffer.alloc(kib * 1024, 7);
      state.flooded = 0;
      for (let i = 0; i < count && !call.cancelled; i++) {
        state.flooded++;
        if (!call.write(chunk)) await new Promise((resolve) => call.once('drain', resolve));
      }
      call.end();
    },
  });
  const tls = options.tls;
  const credentials = tls === undefined ? grpc.ServerCredentials.createInsecure() : grpc.ServerCredentials.createSsl(tls.ca ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], tls.requireClientCert ?? false);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))));
  return {
    port,
    calls,
    get flooded() {
      return state.flooded;
    },
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())).then(() => server.forceShutdown()),
  };
}

export const EchoClient = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'Echo');
export type EchoClient = InstanceType<typeof EchoClient>;
