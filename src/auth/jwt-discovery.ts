/**
 * `discovery: true`: an issuer's keys come from the `jwks_uri` of its OpenID
 * Provider metadata (`<issuer>/.well-known/openid-configuration`), read on
 * first use, never at config load (a provider may start after the proxy).
 * The document must name the configured issuer exactly (OpenID Connect
 * Discovery §4.3), and its `jwks_uri` follows the same https rule as a
 * configured `jwksUri`. A failed discovery is retried after 1 s, doubling up
 * to the issuer's cooldown; once found, the JWKS is a {@link RemoteKeySet}.
 */
import type { ExportedJWKSCache, FlattenedJWSInput, JWSHeaderParameters } from 'jose';
import type { Config } from '../config/schema.js';
import { JwksUnavailableError } from './jwt-errors.js';
import { INSECURE_JWKS, isInsecureJwksUri, readCapped, retryDelayMs } from './jwt-jwks-fetch.js';
import type { KeySourceOptions, RemoteKeySet } from './jwt-remote-keys.js';

type IssuerConfig = Config['jwt']['issuers'][number];

/** Why discovery failed; the cause of a `discovery_failed` refusal. */
export class DiscoveryError extends Error {
  readonly code = 'TG_DISCOVERY_FAILED';
  constructor(message: string, cause?: unknown) {
    super(message, { cause });
    this.name = 'DiscoveryError';
  }
}

/** Where the metadata of `issuer` lives: the issuer without its trailing slash, plus the well-known path. */
export function discoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
}

export class DiscoveredKeySet {
  private keys: RemoteKeySet | null = null;
  private pending: Promise<RemoteKeySet> | null = null;
  private failures = 0;
  private retryAt = Number.NEGATIVE_INFINITY;
  private failure: unknown = undefined;

  constructor(
    private readonly config: IssuerConfig,
    private readonly opts: KeySourceOptions,
    private readonly keySet: (jwksUri: string) => RemoteKeySet,
  ) {
    const known = opts.discovered.get(config.issuer);
    if (known !== undefined) this.keys = keySet(known);
  }

  /** The discovered jwks_uri, null until discovery succeeded. */
  get uri(): string | null {
    return this.keys?.uri ?? null;
  }

  snapshot(): ExportedJWKSCache | null {
    return this.keys?.snapshot() ?? null;
  }

  readonly getKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> => {
    const keys = this.keys ?? (await this.discover());
    return keys.getKey(header, token);
  };

  /** One discovery at a time; within the backoff after a failure, the failure again without a request. */
  private discover(): Promise<RemoteKeySet> {
    if (Date.now() < this.retryAt) return Promise.reject(new JwksUnavailableError(this.failure));
    this.pending ??= this.fetchJwksUri()
      .then(
        (uri) => {
          this.failures = 0;
          return (this.keys = this.keySet(uri));
        },
        (err: unknown) => {
          this.failures++;
          this.retryAt = Date.now() + retryDelayMs(this.failures, this.opts.cooldownMs);
          this.failure = err instanceof DiscoveryError ? err : new DiscoveryError('discovery request failed', err);
          throw new JwksUnavailableError(this.failure);
        },
      )
      .finally(() => {
        this.pending = null;
      });
    return this.pending;
  }

  private async fetchJwksUri(): Promise<string> {
    // No redirects: one to http:// would bypass the https rule below.
    const res = await fetch(discoveryUrl(this.config.issuer), { redirect: 'error', signal: AbortSignal.timeout(this.opts.timeoutMs), headers: { accept: 'application/json' } });
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => {});
      throw new DiscoveryError(`discovery answered ${res.status}`);
    }
    let doc: { issuer?: unknown; jwks_uri?: unknown } | null;
    try {
      doc = JSON.parse(await readCapped(res, this.config.jwksMaxBytes)) as typeof doc;
    } catch (err) {
      throw new DiscoveryError('discovery document is not JSON (or too large)', err);
    }
    if (doc?.issuer !== this.config.issuer) throw new DiscoveryError('discovery document names another issuer');
    const uri = doc.jwks_uri;
    if (typeof uri !== 'string' || !URL.canParse(uri) || !/^https?:$/.test(new URL(uri).protocol)) throw new DiscoveryError('discovery document has no usable jwks_uri');
    if (isInsecureJwksUri(uri) && !this.config.jwksAllowHttp) throw new DiscoveryError(`jwks_uri: ${INSECURE_JWKS}`);
    return uri;
  }
}
