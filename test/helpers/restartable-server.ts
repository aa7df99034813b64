/**
 * A real HTTP server on loopback that can stop (connections refused, open ones
 * cut, as a crashed receiver) and start again on the same port. The usage-sink
 * receivers extend it with what they do with a request's body.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export abstract class RestartableServer {
  port = 0;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();

  /** Called with the whole request body once it has arrived. */
  protected abstract handle(req: IncomingMessage, body: string, res: ServerResponse): void;

  /** Listens (again on the same port after stop()). */
  async start(): Promise<void> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.handle(req, Buffer.concat(chunks).toString(), res));
    });
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  /** Stops listening and cuts open connections: a sink sees connections refused. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server === null) return;
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
}
