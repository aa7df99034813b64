/**
 * The data port's certificate files: read and checked (a key that does not
 * match its certificate is refused with the file names, never the key), and
 * watched: a changed pair is applied, a bad one is logged and not applied. Real files and openssl-made certificates.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { SecureContextOptions } from 'node:tls';
import { pino, type Logger } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { readTlsMaterial, watchTlsMaterial, type ListenTls } from '../../../src/tls/listen-certs.js';
import { makePki, type CertPair, type Pki } from '../../helpers/certs.js';
import { waitFor } from '../../helpers/fwd-net.js';

let pki: Pki;
let first: CertPair;
let second: CertPair;

beforeAll(async () => {
  pki = await makePki();
  first = await pki.issue('first');
  second = await pki.issue('second');
});

function listenTls(cert: string, key: string, caFile: string | null = null): ListenTls {
  return { certFile: cert, keyFile: key, minVersion: 'TLSv1.2', caFile };
}

function capture(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString().split('\n').filter((l) => l !== ''));
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

describe('readTlsMaterial', () => {
  it('reads a matching pair, with the client CA when given', () => {
    const m = readTlsMaterial(listenTls(first.cert, first.key, pki.ca));
    expect(m.options.minVersion).toBe('TLSv1.2');
    expect(m.options.ca).toBeDefined();
    expect(m.digest).toMatch(/^[0-9a-f]{64}$/);
  });

  it('refuses a key of another certificate, naming both files and never showing the key', () => {
    let message = '';
    try {
      readTlsMaterial(listenTls(first.cert, second.key));
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain(first.cert);
    expect(message).toContain(second.key);
    expect(message).not.toContain('PRIVATE KEY');
  });

  it('refuses a missing file', () => {
    expect(() => readTlsMaterial(listenTls(join(pki.dir, 'missing.crt'), first.key))).toThrow(/missing\.crt/);
  });
});

describe('watchTlsMaterial', () => {
  it('applies a changed pair, keeps the old pair when the new one is bad, and applies the next good one', async () => {
    const dir = pki.dir;
    const cert = join(dir, 'watched.crt');
    const key = join(dir, 'watched.key');
    copyFileSync(first.cert, cert);
    copyFileSync(first.key, key);
    const tls = listenTls(cert, key);
    const applied: SecureContextOptions[] = [];
    const { logger, lines } = capture();
    const stop = watchTlsMaterial(tls, readTlsMaterial(tls), (o) => applied.push(o), logger);
    try {
      copyFileSync(second.cert, cert);
      copyFileSync(second.key, key);
      await waitFor(() => applied.length === 1, 'the new pair applied');
      expect(String(applied[0]!.cert)).toBe(String(readTlsMaterial(listenTls(second.cert, second.key)).options.cert));

      copyFileSync(first.cert, cert); // a certificate that does not match the key
      await waitFor(() => lines.some((l) => l.includes('the previous one keeps serving')), 'the refusal logged');
      expect(applied).toHaveLength(1);
      expect(lines.join('\n')).not.toContain('PRIVATE KEY');

      copyFileSync(first.key, key); // the pair matches again: applied
      await waitFor(() => applied.length === 2, 'the repaired pair applied');
    } finally {
      stop();
    }
  });
});
