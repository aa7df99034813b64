/**
 * Parts for the stage unit tests (test/unit/stages): a CompiledConfig built
 * from YAML text the way loadConfig builds it (parseConfig, then the
 * credential verifiers), a RequestContext around a request-shaped object,
 * and a runner that runs stages in order as the pipeline does — stopping at
 * the first Rejection, awaiting a stage that answers with a Promise.
 */
import type { IncomingMessage } from 'node:http';
import { SignJWT, type JWTPayload } from 'jose';
import { buildAuthRuntime } from '../../src/auth/runtime.js';
import type { CompiledConfig } from '../../src/config/compile.js';
import { parseConfig } from '../../src/config/load.js';
import { RequestContext } from '../../src/context.js';
import { ERRORS, type Rejection } from '../../src/errors.js';

export async function compileConfig(yaml: string, env: NodeJS.ProcessEnv = {}): Promise<CompiledConfig> {
  const core = parseConfig(yaml, 'stage-test.yaml', env);
  const auth = await buildAuthRuntime(core.source, env, process.cwd());
  return Object.freeze({ ...core, auth, redisTls: null });
}

export interface RequestShape {
  method?: string;
  url?: string;
  /** Host header; default `api.test`. */
  host?: string;
  /** Headers in the order sent (a name may repeat), after Host. */
  headers?: readonly (readonly [string, string])[];
  remoteAddress?: string;
}

/** Repeats of these keep the first value in Node's `req.headers`; other repeats are joined with ', '. */
const FIRST_WINS = new Set(['host', 'authorization', 'content-type', 'content-length', 'user-agent']);

let requests = 0;

/** A context as the pipeline creates it on arrival: request id set, nothing else filled in. */
export function requestContext(config: CompiledConfig, shape: RequestShape = {}): RequestContext {
  const pairs: (readonly [string, string])[] = [['Host', shape.host ?? 'api.test'], ...(shape.headers ?? [])];
  const headers: Record<string, string> = {};
  const rawHeaders: string[] = [];
  for (const [name, value] of pairs) {
    rawHeaders.push(name, value);
    const lower = name.toLowerCase();
    const prev = headers[lower];
    if (prev === undefined) headers[lower] = value;
    else if (!FIRST_WINS.has(lower)) headers[lower] = `${prev}, ${value}`;
  }
  const req = {
    method: shape.method ?? 'GET',
    url: shape.url ?? '/',
    headers,
    rawHeaders,
    httpVersionMajor: 1,
    httpVersionMinor: 1,
    complete: true,
    socket: { remoteAddress: shape.remoteAddress ?? '127.0.0.1' },
  } as unknown as IncomingMessage;
  const ctx = new RequestContext(req, null, null, config, performance.now());
  ctx.requestId = `req-${++requests}`;
  return ctx;
}

export type Stage = (ctx: RequestContext) => Rejection | undefined | Promise<Rejection | undefined>;

/** Runs `stages` in order; the first Rejection stops them (as the pipeline's admission loop does). */
export async function runStages(ctx: RequestContext, stages: readonly Stage[]): Promise<Rejection | undefined> {
  for (const stage of stages) {
    const verdict = await stage(ctx);
    if (verdict !== undefined) return verdict;
  }
  return undefined;
}

/** A Rejection as the client and the metric see it: status, code, reason. */
export function refusal(r: Rejection | undefined): { status: number; code: string; reason: string | undefined } | undefined {
  return r === undefined ? undefined : { status: ERRORS[r.code].status, code: r.code, reason: r.reason };
}

export const JWT_ISSUER = 'https://login.test/';
export const JWT_AUDIENCE = 'api://tenantgate-tests';
export const JWT_SECRET = 'stage-tests-hs256-secret-0123456789abcdef';
/** A `jwt:` section with one HS256 issuer whose tokens {@link hs256Token} signs. */
export const HS256_ISSUER_YAML = `jwt:
  issuers:
    - { issuer: "${JWT_ISSUER}", audience: "${JWT_AUDIENCE}", algorithms: [HS256], secret: "${JWT_SECRET}" }
`;

/** A token from the HS256 issuer, valid for ten minutes of the real clock (the verifier reads it too). */
export function hs256Token(claims: JWTPayload): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer(JWT_ISSUER)
    .setAudience(JWT_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode(JWT_SECRET));
}
