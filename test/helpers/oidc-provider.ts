/**
 * A real OpenID provider (the `oidc-provider` package) on 127.0.0.1 for
 * tests: the `client_credentials` grant issues JWT access tokens for a
 * resource indicator, signed with the algorithm each client is registered
 * for, with the client's tenant in a custom claim (`tenant_id`). It can be
 * stopped and started again on the same port, with the same or new signing
 * keys (rotation), and counts the JWKS and discovery requests it receives.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider from 'oidc-provider';

export type IdpAlg = 'RS256' | 'PS256' | 'ES256' | 'Ed25519';

/** The API the tokens are for: their `aud`. */
export const RESOURCE = 'https://api.orders.test';
/** Scopes the resource server grants (space-separated in `scope`). */
export const RESOURCE_SCOPES = 'orders.read orders.write';

export interface IdpClient {
  readonly clientId: string;
  readonly secret: string;
  /** The alg its access tokens are signed with. */
  readonly alg: IdpAlg;
  readonly tenant: string;
}

/** A private signing JWK with its kid and alg (what the provider's keystore takes). */
export async function idpKey(alg: IdpAlg, kid: string): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' || alg === 'PS256' ? { modulusLength: 2048 } : {}) });
  return { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
}

export class OidcIdp {
  /** Requests for the JWKS, and for the discovery document. */
  jwksFetches = 0;
  discoveryFetches = 0;
  private server: Server | null = null;
  private port = 0;
  private handler: ((req: IncomingMessage, res: ServerResponse) => void) | null = null;

  private constructor(
    readonly clients: readonly IdpClient[],
    private keys: readonly JWK[],
  ) {}

  /** `keys`: private JWKs; per alg, the first one signs. */
  static async start(clients: readonly IdpClient[], keys: readonly JWK[]): Promise<OidcIdp> {
    const idp = new OidcIdp(clients, keys);
    await idp.up();
    return idp;
  }

  /** The issuer (`iss` of its tokens): http://127.0.0.1:<port>, fixed across restarts. */
  get issuer(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Kids of the keys it signs with and publishes. */
  get kids(): string[] {
    return this.keys.map((k) => k.kid!);
  }

  /** Listens (again, on the same port after {@link down}); `keys` replaces the keystore (key rotation). */
  async up(keys?: readonly JWK[]): Promise<void> {
    if (this.server !== null) return;
    if (keys !== undefined) this.keys = keys;
    const server = createServer((req, res) => {
      if (req.url === '/jwks') this.jwksFetches++;
      if (req.url === '/.well-known/openid-configuration') this.discoveryFetches++;
      this.handler!(req, res);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    this.handler = this.provider().callback();
  }

  /** Stops listening: new connections are refused, open ones are cut. */
  async down(): Promise<void> {
    const server = this.server;
    if (server === null) return;
    this.server = null;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** An access token from the token endpoint (client_credentials, client_secret_post), for {@link RESOURCE}. */
  async token(client: IdpClient, scope = RESOURCE_SCOPES): Promise<string> {
    const request = () =>
      fetch(`${this.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: client.clientId, client_secret: client.secret, resource: RESOURCE, scope }),
      });
    // After a restart, fetch's pool may still hold a connection the old server closed: one retry on a fresh one.
    const res = await request().catch(request);
    const body = (await res.json()) as { access_token?: string; token_type?: string; error?: string; error_description?: string };
    if (res.status !== 200 || body.access_token === undefined) throw new Error(`token endpoint: ${res.status} ${body.error}: ${body.error_description}`);
    return body.access_token;
  }

  private provider(): Provider {
    const byId = new Map(this.clients.map((c) => [c.clientId, c]));
    const provider = new Provider(this.issuer, {
      clients: this.clients.map((c) => ({
        client_id: c.clientId,
        client_secret: c.secret,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_post',
      })),
      jwks: { keys: [...this.keys] },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => RESOURCE,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx, resource, client) => {
            if (resource !== RESOURCE) throw new Provider.errors.InvalidTarget();
            return { audience: RESOURCE, scope: RESOURCE_SCOPES, accessTokenFormat: 'jwt', accessTokenTTL: 300, jwt: { sign: { alg: byId.get(client.clientId)!.alg } } };
          },
        },
      },
      // The tenant travels in a custom claim of the access token.
      extraTokenClaims: (_ctx, token) => {
        const clientId = (token as { clientId?: string }).clientId;
        return clientId === undefined ? undefined : { tenant_id: byId.get(clientId)?.tenant };
      },
    });
    return provider;
  }
}
