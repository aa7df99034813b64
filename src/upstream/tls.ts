/**
 * `routes[].tls` → the TLS options of that route's upstream connections: a
 * private CA (trusted for this route only, never process-wide), a client
 * certificate for mTLS, the name to verify. The files are read when the
 * config loads (and on every reload), and tried in a secure context then, so
 * a missing or broken file refuses the config with its YAML path rather than
 * failing the first request. Verification is never turned off.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { CompiledCore } from '../config/compile.js';
import { buildRouteTable, withUpstreamTls } from '../config/routes.js';
import type { RouteConfig } from '../config/schema.js';
import type { UpstreamTlsOptions } from '../domain.js';

/** A problem with one route's `tls` file, with its path in the config. */
export class UpstreamTlsError extends Error {
  constructor(
    readonly path: (string | number)[],
    message: string,
  ) {
    super(message);
  }
}

type TlsConfig = NonNullable<RouteConfig['tls']>;

async function readPem(baseDir: string, file: string, path: (string | number)[]): Promise<string> {
  try {
    return await readFile(isAbsolute(file) ? file : resolve(baseDir, file), 'utf8');
  } catch (err) {
    throw new UpstreamTlsError(path, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/** Reads and checks one route's files; `at` is the route's `tls` path. */
export async function readUpstreamTls(tls: TlsConfig, baseDir: string, at: (string | number)[]): Promise<UpstreamTlsOptions> {
  const ca = tls.caFile === undefined ? undefined : await readPem(baseDir, tls.caFile, [...at, 'caFile']);
  const cert = tls.certFile === undefined ? undefined : await readPem(baseDir, tls.certFile, [...at, 'certFile']);
  const key = tls.keyFile === undefined ? undefined : await readPem(baseDir, tls.keyFile, [...at, 'keyFile']);
  if (ca !== undefined) checkCertificate(ca, [...at, 'caFile']);
  if (cert !== undefined) checkCertificate(cert, [...at, 'certFile']);
  if (cert !== undefined && key !== undefined) {
    try {
      createSecureContext({ cert, key });
    } catch (err) {
      // OpenSSL's reason, never the file's content.
      throw new UpstreamTlsError([...at, 'keyFile'], `does not match certFile, or is not a PEM key (${(err as Error).message})`);
    }
  }
  const fingerprint = createHash('sha256')
    .update(JSON.stringify([ca ?? null, cert ?? null, key ?? null, tls.servername ?? null]))
    .digest('hex')
    .slice(0, 16);
  return Object.freeze({
    ...(ca !== undefined ? { ca } : {}),
    ...(cert !== undefined ? { cert, key } : {}),
    ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
    fingerprint,
  });
}

/** OpenSSL takes a PEM without a certificate in it silently: look for one. */
function checkCertificate(pem: string, path: (string | number)[]): void {
  try {
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no BEGIN CERTIFICATE line');
    new X509Certificate(pem);
  } catch (err) {
    throw new UpstreamTlsError(path, `is not a PEM certificate (${(err as Error).message})`);
  }
}

/**
 * The compiled config with every route's TLS files read: routes that set
 * `tls` are replaced (and the route table rebuilt); a config without any is
 * returned as it is.
 */
export async function loadUpstreamTls(core: CompiledCore, baseDir: string): Promise<CompiledCore> {
  const routes = core.source.routes;
  if (!routes.some((r) => r.tls !== undefined)) return core;
  const routeList = await Promise.all(
    core.routeList.map(async (compiled, i) => {
      const tls = routes[i]!.tls;
      return tls === undefined ? compiled : withUpstreamTls(compiled, await readUpstreamTls(tls, baseDir, ['routes', i, 'tls']));
    }),
  );
  return Object.freeze({ ...core, routeList: Object.freeze(routeList), routes: buildRouteTable(routeList, core.source.routing.caseInsensitive) });
}
