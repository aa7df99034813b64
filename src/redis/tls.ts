/**
 * `store.tls` → the Node TLS options every rediss:// connection uses (limit
 * store, registry and its subscriber, redis-stream sinks). The PEM files are
 * read and tried in a secure context once, when the config loads, so a
 * missing file, a PEM that does not parse or a key that does not match its
 * certificate refuses the config with the field's path — not a connection
 * error at the first request. Verification of the server is never turned off.
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { createSecureContext, type ConnectionOptions } from 'node:tls';
import type { Config } from '../config/schema.js';

export type RedisTls = Readonly<Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'servername'>>;

/** A problem with one field of `store.tls` (its path below `store.tls`). */
export class RedisTlsError extends Error {
  constructor(
    readonly field: (string | number)[],
    message: string,
  ) {
    super(message);
  }
}

async function readPem(baseDir: string, file: string, field: (string | number)[]): Promise<string> {
  try {
    return await readFile(isAbsolute(file) ? file : resolve(baseDir, file), 'utf8');
  } catch (err) {
    throw new RedisTlsError(field, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

export async function loadRedisTls(tls: Config['store']['tls'], baseDir: string): Promise<RedisTls | null> {
  if (tls === null) return null;
  const caFiles = tls.ca === undefined ? [] : typeof tls.ca === 'string' ? [tls.ca] : tls.ca;
  const caField = (i: number) => (typeof tls.ca === 'string' ? ['ca'] : ['ca', i]);
  const ca = await Promise.all(caFiles.map((f, i) => readPem(baseDir, f, caField(i))));
  const cert = tls.cert === undefined ? undefined : await readPem(baseDir, tls.cert, ['cert']);
  const key = tls.key === undefined ? undefined : await readPem(baseDir, tls.key, ['key']);
  // Each on its own first, so the message names the file that is wrong; then the pair together.
  ca.forEach((pem, i) => checkCertificate(pem, caField(i)));
  if (cert !== undefined && key !== undefined) tryContext({ cert, key }, ['key'], 'does not match cert, or one of them is not PEM');
  return Object.freeze({
    ...(ca.length > 0 ? { ca } : {}),
    ...(cert !== undefined ? { cert, key } : {}),
    ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
  });
}

/** OpenSSL takes a CA "bundle" without a single certificate in it silently: look for one. */
function checkCertificate(pem: string, field: (string | number)[]): void {
  try {
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no BEGIN CERTIFICATE line');
    new X509Certificate(pem);
  } catch (err) {
    throw new RedisTlsError(field, `is not a PEM certificate (${(err as Error).message})`);
  }
}

function tryContext(options: ConnectionOptions, field: (string | number)[], message: string): void {
  try {
    createSecureContext(options);
  } catch (err) {
    // OpenSSL's reason (e.g. "no start line"), never the file's content.
    throw new RedisTlsError(field, `${message} (${(err as Error).message})`);
  }
}
