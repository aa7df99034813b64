/**
 * Plumbing of the admin API: the error type handlers throw, JSON bodies
 * (size-limited, strict schemas), cursor pagination and audit events. The
 * routes are in ./api.ts, the token check in ./tokens.ts.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { z } from 'zod';
import type { ErrorCode } from '../errors.js';
import type { ProxyState } from '../state.js';

/** Largest admin request body; larger is 413. */
export const MAX_BODY_BYTES = 64 * 1024;

export class AdminError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

/** Reads the whole body (up to MAX_BODY_BYTES) and parses it as JSON; an empty body is `undefined`. */
export async function readJson(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length']);
  if (declared > MAX_BODY_BYTES) throw new AdminError('payload_too_large', `The body is larger than ${MAX_BODY_BYTES} bytes.`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new AdminError('payload_too_large', `The body is larger than ${MAX_BODY_BYTES} bytes.`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return undefined;
  // Any content-type is read as JSON (curl -d sends a form type); the bearer token is what keeps browsers out.
  try {
    return JSON.parse(text);
  } catch {
    throw new AdminError('bad_request', 'The body is not valid JSON.');
  }
}

/** Validates a body with a strict zod schema; every problem is named with its field. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const r = schema.safeParse(body ?? {});
  if (r.success) return r.data;
  const problems = r.error.issues.map((i) => {
    const path = i.path.map(String).join('.');
    if (i.code === 'unrecognized_keys') return i.keys.map((k) => `unknown field "${path === '' ? k : `${path}.${k}`}"`).join('; ');
    if (i.code === 'invalid_type' && i.input === undefined) return `${path}: is required`;
    return path === '' ? i.message : `${path}: ${i.message}`;
  });
  throw new AdminError('bad_request', `Invalid body: ${problems.join('; ')}.`);
}

export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

/** Cursor pagination over items sorted by id: the cursor is the last id returned (base64url). */
export function paginate<T extends { id: string }>(items: T[], query: URLSearchParams): Page<T> {
  const limitText = query.get('limit');
  const limit = limitText === null ? 100 : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new AdminError('bad_request', 'limit must be an integer from 1 to 1000.');
  const cursor = query.get('cursor');
  let after: string | null = null;
  if (cursor !== null && cursor !== '') {
    after = Buffer.from(cursor, 'base64url').toString('utf8');
    if (after === '' || Buffer.from(after).toString('base64url') !== cursor) throw new AdminError('bad_request', 'cursor is not one this API returned.');
  }
  const sorted = [...items].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const start = after === null ? 0 : sorted.findIndex((x) => x.id > after);
  const rest = start === -1 ? [] : sorted.slice(start);
  const data = rest.slice(0, limit);
  const nextCursor = rest.length > limit ? Buffer.from(data.at(-1)!.id).toString('base64url') : null;
  return { data, nextCursor };
}

/** Who made an admin call: the admin token's id (never the token) and the client address. */
export interface Actor {
  readonly tokenId: string;
  readonly address: string;
}

export function actorOf(req: IncomingMessage, tokenId: string): Actor {
  return { tokenId, address: req.socket.remoteAddress ?? 'unknown' };
}

/** One audit event per mutation, to the usage sinks (`type: audit`); secrets never reach it. */
export function audit(state: ProxyState, who: Actor, action: string, target: { type: 'tenant' | 'key'; id: string; tenant?: string }, before: unknown, after: unknown): void {
  const id = randomUUID();
  const actor = `admin-token@${who.address}`;
  state.usage?.record({ id, ts: new Date().toISOString(), type: 'audit', actor, tokenId: who.tokenId, action, target, before: before ?? null, after: after ?? null });
  // Also in the log (who did what), so a setup without sinks still has a trail.
  state.logger.info({ auditId: id, actor, tokenId: who.tokenId, action, target }, 'admin change');
}
