/**
 * Real servers on loopback for tests: a recording upstream, the proxy
 * in-process (startProxy) or as a child process (spawnProxy), and a raw-socket
 * client for requests no well-behaved client library would send.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { startTenantgate, type Tenantgate } from '../../src/app.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const MAIN = join(ROOT, 'dist/main.js');

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  body: Buffer;
}

export interface Upstream {
  port: number;
  url: string;
  requests: RecordedRequest[];
  server: Server;
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

const defaultHandler: Handler = (req, res) => {
  const body = JSON.stringify({ ok: true, url: req.url });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
};

/**
 * An upstream that records every request it receives (headers and full body)
 * before calling `handler`. Pass `stream: true` to get the request unread
 * (for big uploads), in which case the recorded body stays empty.
 */
export async function startUpstream(handler: Handler = defaultHandler, opts: { stream?: boolean } = {}): Promise<Upstream> {
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    const rec: RecordedRequest = { method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.alloc(0) };
    requests.push(rec);
    if (opts.stream) {
      handler(req, res, rec.body);
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      rec.body = Buffer.concat(chunks);
      handler(req, res, rec.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    server,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function writeConfig(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'tg-test-'));
  const file = join(dir, 'tenantgate.yaml');
  writeFileSync(file, yaml);
  return file;
}

/** Adds `listen`/`admin` on port 0 and a silent log level unless the YAML sets them. */
export function withTestDefaults(yaml: string): string {
  let out = yaml;
  if (!/^listen:/m.test(out)) out = `listen: { host: 127.0.0.1, port: 0 }\n${out}`;
  if (!/^admin:/m.test(out)) out = `admin: { host: 127.0.0.1, port: 0 }\n${out}`;
  return out;
}

export interface RunningProxy {
  gate: Tenantgate;
  port: number;
  url: string;
  adminUrl: string;
  configFile: string;
  close(): Promise<void>;
}

/** Starts the proxy in this process on free ports (its logger silent, unless given one). */
export async function startProxy(yaml: string, env: NodeJS.ProcessEnv = {}, logger: Logger = pino({ level: 'silent' })): Promise<RunningProxy> {
  const configFile = writeConfig(withTestDefaults(yaml));
  const gate = await startTenantgate({ configFile, env: { ...process.env, ...env }, logger, watch: false });
  const port = gate.dataAddress.port;
  return {
    gate,
    port,
    url: `http://127.0.0.1:${port}`,
    adminUrl: `http://127.0.0.1:${gate.adminAddress.port}`,
    configFile,
    close: () => gate.shutdown(),
  };
}

export interface SpawnedProxy {
  child: ChildProcess;
  port: number;
  adminPort: number;
  url: string;
  adminUrl: string;
  configFile: string;
  /** Every stdout line so far, parsed as JSON where possible. */
  logs: unknown[];
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Runs `node dist/main.js serve -c <file>` and waits for its "listening" log line. */
export async function spawnProxy(yaml: string, env: NodeJS.ProcessEnv = {}, configFile = writeConfig(withTestDefaults(yaml))): Promise<SpawnedProxy> {
  const child = spawn(process.execPath, [MAIN, 'serve', '-c', configFile], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: unknown[] = [];
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const listening = new Promise<{ port: number; adminPort: number }>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let parsed: unknown = line;
        try {
          parsed = JSON.parse(line);
        } catch {
          /* not JSON */
        }
        logs.push(parsed);
        const p = parsed as { msg?: string; data?: { port: number }; admin?: { port: number } };
        if (p.msg === 'tenantgate listening') resolve({ port: p.data!.port, adminPort: p.admin!.port });
      }
    });
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    void exited.then((code) => reject(new Error(`proxy exited with ${code} before listening: ${stderr}`)));
  });
  const { port, adminPort } = await listening;
  return {
    child,
    port,
    adminPort,
    url: `http://127.0.0.1:${port}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    configFile,
    logs,
    exited,
    stop: (signal = 'SIGTERM') => {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}

export interface RawResponse {
  /** Everything the server sent before closing (or before the timeout). */
  text: string;
  status: number | null;
  closed: boolean;
}

/**
 * Sends bytes exactly as given on a fresh TCP connection and collects the
 * answer until the server closes it or `waitMs` passes.
 */
export function rawRequest(port: number, payload: string | Buffer, waitMs = 1500): Promise<RawResponse> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let closed = false;
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ text, status: m ? Number(m[1]) : null, closed });
    };
    const timer = setTimeout(done, waitMs);
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => {
      closed = true;
      done();
    });
    socket.write(payload);
  });
}

/** Body of a raw HTTP response (after the blank line), parsed as JSON. */
export function rawJson(res: RawResponse): unknown {
  const i = res.text.indexOf('\r\n\r\n');
  let body = res.text.slice(i + 4);
  if (/^transfer-encoding: *chunked/im.test(res.text.slice(0, i))) {
    let out = '';
    for (;;) {
      const nl = body.indexOf('\r\n');
      const size = parseInt(body.slice(0, nl), 16);
      if (!(size > 0)) break;
      out += body.slice(nl + 2, nl + 2 + size);
      body = body.slice(nl + 2 + size + 2);
    }
    body = out;
  }
  return JSON.parse(body);
}
