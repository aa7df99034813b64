/**
 * The fetch jose uses for a remote JWKS (its `customFetch`), with what jose
 * lacks: a byte cap and a key-count cap. The body is read as a stream and the
 * connection cut the moment it passes `maxBytes` (a `Content-Length` above it
 * is refused unread), so a hostile or broken endpoint costs at most that much
 * memory, never the whole response. Both refusals are {@link JwksRefusedError}:
 * a failed fetch, after which the keys fetched last keep verifying.
 */
import type { FetchImplementation } from 'jose';
import { traceHooks } from '../tracing/jwks-hook.js';
import { JwksRefusedError } from './jwt-errors.js';

export interface JwksLimits {
  /** Largest JWKS response body, in bytes. */
  readonly maxBytes: number;
  /** Most keys a JWKS may hold. */
  readonly maxKeys: number;
}

export const JWKS_LIMIT_DEFAULTS: JwksLimits = Object.freeze({
  // Real IdPs publish a few keys in a few KB (Entra ID with x5c chains: ~20 KB).
  maxBytes: 512 * 1024,
  maxKeys: 100,
});

/** Loopback hosts, where an `http://` JWKS never crosses a network. */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname.endsWith('.localhost') || hostname === '[::1]' || /^127(?:\.\d{1,3}){3}$/.test(hostname);
}

/** The one wording of the http:// refusal, shared by the config check (src/config/references.ts) and createKeySource. */
export const INSECURE_JWKS = 'http:// outside loopback lets anyone on the path swap the keys; use https://, or set jwksAllowHttp: true';

/** True when `uri` is `http://` to anything but loopback: keys that an on-path attacker could swap. */
export function isInsecureJwksUri(uri: string): boolean {
  try {
    const url = new URL(uri);
    return url.protocol === 'http:' && !isLoopbackHost(url.hostname);
  } catch {
    return false; // not a URL at all: the schema says so
  }
}

/** First wait after a failed JWKS or discovery fetch; each further failure doubles it, up to the cooldown. */
export const FIRST_RETRY_MS = 1000;

/** The wait before the next attempt after `failures` consecutive failed fetches. */
export function retryDelayMs(failures: number, cooldownMs: number): number {
  return Math.min(cooldownMs, FIRST_RETRY_MS * 2 ** Math.min(failures - 1, 30));
}

export function cappedJwksFetch(limits: JwksLimits): FetchImplementation {
  const capped: FetchImplementation = async (url, options) => {
    const res = await fetch(url, options);
    // jose refuses anything but 200 on the status alone; free the connection instead of leaving the body unread.
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => {});
      return res;
    }
    const declared = Number(res.headers.get('content-length'));
    if (declared > limits.maxBytes) {
      await res.body?.cancel().catch(() => {});
      throw new JwksRefusedError('too_large', limits.maxBytes);
    }
    const text = await readCapped(res, limits.maxBytes);
    let keys: unknown;
    try {
      keys = (JSON.parse(text) as { keys?: unknown } | null)?.keys;
    } catch {
      keys = undefined; // not JSON: jose reports it as it does any invalid JWKS
    }
    // Parsed here only to count the keys before jose builds its set from its own parse: a fetch is
    // rare (cooldown-paced) and at most maxBytes, so the second parse is cheap next to an unbounded set.
    if (Array.isArray(keys) && keys.length > limits.maxKeys) throw new JwksRefusedError('too_many_keys', limits.maxKeys);
    return new Response(text, { status: 200, headers: { 'content-type': 'application/json' } });
  };
  // Tracing on: the fetch becomes a client span of the request that needed the keys.
  return (url, options) => (traceHooks.jwksFetch === null ? capped(url, options) : traceHooks.jwksFetch(url, () => capped(url, options)));
}

/** The body as UTF-8 text, or {@link JwksRefusedError} as soon as it passes `max` bytes (the stream is cancelled, the socket freed). */
export async function readCapped(res: Response, max: number): Promise<string> {
  if (res.body === null) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel().catch(() => {});
      throw new JwksRefusedError('too_large', max);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, total).toString('utf8');
}
