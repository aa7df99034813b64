/**
 * A real redis-server speaking only TLS (its plain port off), on a free
 * loopback port, that requires a client certificate: a throwaway CA, a server
 * certificate for 127.0.0.1 / localhost and a client certificate, made with
 * the `openssl` command in a temporary directory (.ci/run installs it).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, RedisServer } from './redis.js';

const run = promisify(execFile);

export interface TlsFiles {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A second CA that signed nothing here: trusting it alone must fail verification. */
  otherCa: string;
}

async function openssl(dir: string, ...args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir });
}

/** CA, server and client certificates (RSA 2048, one day), in a new temporary directory. */
export async function makeTlsFiles(): Promise<TlsFiles> {
  const dir = mkdtempSync(join(tmpdir(), 'tg-tls-'));
  const subj = (cn: string) => ['-subj', `/CN=${cn}`];
  await openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', ...subj('tenantgate test CA'));
  await openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'other-ca.key', '-out', 'other-ca.crt', '-days', '1', ...subj('another CA'));
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const [name, ext] of [['server', ['-extfile', 'server.ext']], ['client', []]] as const) {
    await openssl(dir, 'req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, ...subj(`tenantgate test ${name}`));
    await openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', ...ext);
  }
  const at = (f: string) => join(dir, f);
  return {
    dir,
    ca: at('ca.crt'),
    serverCert: at('server.crt'),
    serverKey: at('server.key'),
    clientCert: at('client.crt'),
    clientKey: at('client.key'),
    otherCa: at('other-ca.crt'),
  };
}

export class TlsRedisServer {
  tlsPort = 0;
  private server: RedisServer | null = null;

  constructor(readonly files: TlsFiles) {}

  get url(): string {
    return `rediss://127.0.0.1:${this.tlsPort}`;
  }

  async start(): Promise<void> {
    if (this.tlsPort === 0) this.tlsPort = await freePort();
    const f = this.files;
    // `--port 0` after the helper's own `--port`: the plain port is off, only TLS is served.
    this.server = new RedisServer(null, [
      '--port', '0',
      '--tls-port', String(this.tlsPort),
      '--tls-cert-file', f.serverCert,
      '--tls-key-file', f.serverKey,
      '--tls-ca-cert-file', f.ca,
      '--tls-auth-clients', 'yes',
    ]);
    await this.server.start();
  }

  async stop(): Promise<void> {
    await this.server?.kill();
    rmSync(this.files.dir, { recursive: true, force: true });
  }
}
