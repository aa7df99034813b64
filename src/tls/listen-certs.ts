/**
 * The data port's certificate and key (`listen.tls`), read from files and
 * reloaded when they change, without a restart. cert-manager and Kubernetes
 * Secret volumes replace the files by swapping a symlink in their directory,
 * so the directories are watched (not the files), with a slow poll as well
 * for file systems that send no events. A new pair is checked (it must load
 * and the key must match the certificate) before it replaces the old one; a
 * bad pair is logged and the old one keeps serving. Connections already open
 * keep the certificate they were made with.
 */
import { createHash } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';

export type ListenTls = NonNullable<Config['listen']['tls']>;

/** Events arrive in bursts (a symlink swap is several renames): one reload after they settle. */
const SETTLE_MS = 100;
/** The fallback poll, for volumes whose changes send no inotify event. */
const POLL_MS = 10_000;

export interface TlsMaterial {
  readonly options: SecureContextOptions;
  /** SHA-256 of the files' contents: a reload that reads the same bytes changes nothing. */
  readonly digest: string;
}

/** Reads and checks the pair (and the client CA); throws a message naming the files when they do not make a context. */
export function readTlsMaterial(tls: ListenTls): TlsMaterial {
  const cert = readFileSync(tls.certFile);
  const key = readFileSync(tls.keyFile);
  const ca = tls.caFile === null ? undefined : readFileSync(tls.caFile);
  const options: SecureContextOptions = { cert, key, ca, minVersion: tls.minVersion };
  try {
    createSecureContext(options);
  } catch (err) {
    throw new Error(`listen.tls: ${tls.certFile} and ${tls.keyFile} do not make a usable certificate: ${(err as Error).message}`);
  }
  const hash = createHash('sha256').update(cert).update(key);
  if (ca !== undefined) hash.update(ca);
  return { options, digest: hash.digest('hex') };
}

/**
 * Watches the files of `tls` and calls `apply` with each new, valid pair.
 * Returns the function that stops watching.
 */
export function watchTlsMaterial(tls: ListenTls, initial: TlsMaterial, apply: (options: SecureContextOptions) => void, logger: Logger): () => void {
  let digest = initial.digest;
  let timer: NodeJS.Timeout | null = null;
  const reload = () => {
    timer = null;
    let next: TlsMaterial;
    try {
      next = readTlsMaterial(tls);
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'listen.tls: the new certificate was refused; the previous one keeps serving');
      return;
    }
    if (next.digest === digest) return;
    apply(next.options);
    digest = next.digest;
    logger.info({ certFile: tls.certFile }, 'listen.tls: certificate reloaded');
  };
  const schedule = () => {
    if (timer === null) timer = setTimeout(reload, SETTLE_MS).unref();
  };
  const files = [tls.certFile, tls.keyFile, ...(tls.caFile === null ? [] : [tls.caFile])];
  const watchers: FSWatcher[] = [];
  for (const dir of new Set(files.map((f) => dirname(f)))) {
    try {
      const w = watch(dir, schedule);
      w.on('error', () => w.close());
      watchers.push(w);
    } catch {
      // The poll below still notices changes.
    }
  }
  const poll = setInterval(schedule, POLL_MS);
  poll.unref();
  return () => {
    clearInterval(poll);
    if (timer !== null) clearTimeout(timer);
    for (const w of watchers) w.close();
  };
}
