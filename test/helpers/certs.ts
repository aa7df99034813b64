/**
 * Throwaway PKI for TLS tests, made with the `openssl` command in a temporary
 * directory: a CA, server certificates for 127.0.0.1 / localhost (or other
 * names), client certificates, and a second CA that signed nothing the
 * others trust. RSA 2048, valid one day.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Pki {
  dir: string;
  /** The CA certificate (PEM file) that signed every certificate `issue` makes. */
  ca: string;
  /** Another CA: trusting it alone must fail verification. */
  otherCa: string;
  /** Signs a new certificate; `kind: server` gets the SANs (default 127.0.0.1 and localhost). */
  issue(name: string, opts?: { kind?: 'server' | 'client'; san?: string; ca?: 'ca' | 'other-ca' }): Promise<CertPair>;
}

export interface CertPair {
  cert: string;
  key: string;
}

async function openssl(dir: string, ...args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir });
}

export async function makePki(): Promise<Pki> {
  const dir = mkdtempSync(join(tmpdir(), 'tg-pki-'));
  const subj = (cn: string) => ['-subj', `/CN=${cn}`];
  await openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', ...subj('tenantgate test CA'));
  await openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'other-ca.key', '-out', 'other-ca.crt', '-days', '1', ...subj('another CA'));
  const at = (f: string) => join(dir, f);
  return {
    dir,
    ca: at('ca.crt'),
    otherCa: at('other-ca.crt'),
    async issue(name, opts = {}) {
      const kind = opts.kind ?? 'server';
      const ca = opts.ca ?? 'ca';
      const ext = `${name}.ext`;
      writeFileSync(
        at(ext),
        kind === 'server' ? `subjectAltName=${opts.san ?? 'IP:127.0.0.1,DNS:localhost'}\nextendedKeyUsage=serverAuth\n` : 'extendedKeyUsage=clientAuth\n',
      );
      await openssl(dir, 'req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, ...subj(`tenantgate test ${name}`));
      await openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', ext);
      return { cert: at(`${name}.crt`), key: at(`${name}.key`) };
    },
  };
}
