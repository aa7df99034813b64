/**
 * Where an issuer's verification keys come from: a remote JWKS, inline JWKs,
 * PEM files (SPKI or X.509), or an HS secret. Everything that can fail is read
 * and checked here, at create time, so a bad key is a config error and never
 * a surprise on the request path.
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import {
  createLocalJWKSet,
  errors,
  importSPKI,
  importX509,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWK,
  type JWSHeaderParameters,
  type JWTVerifyGetKey,
} from 'jose';
import type { Config } from '../config/schema.js';
import { DiscoveredKeySet } from './jwt-discovery.js';
import { RemoteKeySet, type KeySourceOptions } from './jwt-remote-keys.js';

export { RemoteKeySet, type KeySourceOptions } from './jwt-remote-keys.js';
import { INSECURE_JWKS, isInsecureJwksUri } from './jwt-jwks-fetch.js';

type IssuerConfig = Config['jwt']['issuers'][number];
type LocalSet = ReturnType<typeof createLocalJWKSet>;
type Key = CryptoKey;


/** What jwtVerify gets: a secret for HS*, else a resolver from the header to the key. */
export type KeySource = { kind: 'secret'; key: Uint8Array } | { kind: 'resolver'; key: JWTVerifyGetKey; remote: RemoteKeySet | DiscoveredKeySet | null };

const HMAC = new Set(['HS256', 'HS384', 'HS512']);
/** JWK members that only a private or symmetric key has. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'priv'];


/** Several keys fit (no kid, or PEM files during a rotation): jose's error, iterable over the candidates. */
export function multipleKeys(keys: readonly Key[]): Error {
  const err = new errors.JWKSMultipleMatchingKeys();
  err[Symbol.asyncIterator] = async function* () {
    yield* keys;
  };
  return err;
}

/** Every key `resolve` offers for this header: one, several (jose's iterable error), or none. */
async function candidates(resolve: LocalSet, header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<Key[]> {
  try {
    return [await resolve(header, token)];
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ERR_JWKS_NO_MATCHING_KEY') return [];
    if (code !== 'ERR_JWKS_MULTIPLE_MATCHING_KEYS') throw err;
    const all: Key[] = [];
    for await (const key of err as AsyncIterable<Key>) all.push(key);
    return all;
  }
}

function where(config: IssuerConfig, index: number): string {
  return `jwt.issuers[${index}] (${config.issuer})`;
}

function checkJwk(jwk: Record<string, unknown>, label: string): JWK {
  if (typeof jwk.kty !== 'string') throw new Error(`${label}: a JWK needs "kty"`);
  if (jwk.kty === 'oct') throw new Error(`${label}: symmetric ("oct") keys go in \`secret\`, not \`keys\``);
  const secret = PRIVATE_MEMBERS.find((m) => m in jwk);
  if (secret !== undefined) throw new Error(`${label}: contains private key material ("${secret}"); publish only the public key`);
  return jwk as JWK;
}

/** A PEM public key or certificate, imported once for each allowed algorithm it fits. */
async function importPem(pem: string, algorithms: readonly string[], label: string): Promise<Map<string, Key>> {
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) throw new Error(`${label}: is a PRIVATE key; configure the public key or certificate`);
  const isCert = pem.includes('-----BEGIN CERTIFICATE-----');
  if (!isCert && !pem.includes('-----BEGIN PUBLIC KEY-----')) throw new Error(`${label}: not a PEM public key (SPKI) or certificate`);
  const byAlg = new Map<string, Key>();
  for (const alg of algorithms) {
    try {
      byAlg.set(alg, await (isCert ? importX509(pem, alg) : importSPKI(pem, alg)));
    } catch {
      // This key does not fit this algorithm (an EC key for RS256, say); another may.
    }
  }
  if (byAlg.size === 0) throw new Error(`${label}: fits none of the allowed algorithms ${algorithms.join(', ')}`);
  return byAlg;
}

/**
 * Inline JWKs (matched by kid/alg, as a JWKS) and PEM keys (no kid: matched by
 * alg only, so an IdP that sets a kid header still verifies against a PEM).
 */
async function inlineKeys(config: IssuerConfig, index: number, baseDir: string): Promise<JWTVerifyGetKey> {
  const jwks: JWK[] = [];
  const pemByAlg = new Map<string, Key[]>();
  for (const [i, entry] of (config.keys ?? []).entries()) {
    const label = `${where(config, index)}.keys[${i}]`;
    if (typeof entry !== 'string') {
      jwks.push(checkJwk(entry, label));
      continue;
    }
    // Inline PEM text (e.g. from ${JWT_PUBLIC_KEY}) or a file path.
    let pem = entry;
    if (!entry.includes('-----BEGIN')) {
      const path = isAbsolute(entry) ? entry : resolve(baseDir, entry);
      pem = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
        throw new Error(`${label}: cannot read ${path}: ${err.code ?? err.message}`);
      });
    }
    for (const [alg, key] of await importPem(pem, config.algorithms, `${label} (${entry.includes('-----BEGIN') ? 'inline PEM' : entry})`)) {
      pemByAlg.set(alg, [...(pemByAlg.get(alg) ?? []), key]);
    }
  }
  let local: LocalSet | null = null;
  try {
    if (jwks.length > 0) local = createLocalJWKSet({ keys: jwks } satisfies JSONWebKeySet);
  } catch (err) {
    throw new Error(`${where(config, index)}.keys: ${(err as Error).message}`);
  }
  return async (header, token) => {
    const keys = [...(local === null ? [] : await candidates(local, header, token)), ...(pemByAlg.get(header.alg ?? '') ?? [])];
    if (keys.length === 0) throw new errors.JWKSNoMatchingKey();
    if (keys.length === 1) return keys[0]!;
    throw multipleKeys(keys);
  };
}

/** Checks the issuer's key config and builds its source. Throws a message naming the issuer. */
export async function createKeySource(config: IssuerConfig, index: number, opts: KeySourceOptions): Promise<KeySource> {
  const label = where(config, index);
  const sources = [config.jwksUri, config.keys, config.secret, config.discovery ? true : undefined].filter((s) => s !== undefined).length;
  if (sources !== 1) throw new Error(`${label}: set exactly one of jwksUri, keys, secret or discovery: true`);
  const hmac = config.algorithms.filter((a) => HMAC.has(a));
  if (config.secret !== undefined) {
    if (hmac.length !== config.algorithms.length) throw new Error(`${label}: a secret issuer allows only HS256/HS384/HS512`);
    return { kind: 'secret', key: new TextEncoder().encode(config.secret) };
  }
  // Never let a public key double as an HMAC secret.
  if (hmac.length > 0) throw new Error(`${label}: HS* algorithms need \`secret\`, not public keys`);
  if (config.jwksUri !== undefined) {
    if (isInsecureJwksUri(config.jwksUri) && !config.jwksAllowHttp) throw new Error(`${label}.jwksUri: ${INSECURE_JWKS}`);
    const remote = new RemoteKeySet(config.jwksUri, opts, { maxBytes: config.jwksMaxBytes, maxKeys: config.jwksMaxKeys });
    return { kind: 'resolver', key: remote.getKey, remote };
  }
  if (config.discovery) {
    if (isInsecureJwksUri(config.issuer) && !config.jwksAllowHttp) throw new Error(`${label}.issuer: discovery over ${INSECURE_JWKS}`);
    const remote = new DiscoveredKeySet(config, opts, (uri) => new RemoteKeySet(uri, opts, { maxBytes: config.jwksMaxBytes, maxKeys: config.jwksMaxKeys }));
    return { kind: 'resolver', key: remote.getKey, remote };
  }
  return { kind: 'resolver', key: await inlineKeys(config, index, opts.baseDir), remote: null };
}
