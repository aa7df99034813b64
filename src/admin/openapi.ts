/**
 * The OpenAPI 3.1 document of the admin API, served at `/admin/openapi.json`.
 * Kept as a module (no JSON copy step in the build); a test walks its paths ×
 * methods against the running server and checks every real route is in it.
 */

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const jsonBody = (schema: unknown) => ({ required: true, content: { 'application/json': { schema } } });
const ok = (description: string, schema: unknown) => ({ description, content: { 'application/json': { schema } } });
const err = (description: string) => ({ description, content: { 'application/json': { schema: ref('Error') } } });
const page = (item: string) => ({ type: 'object', required: ['data', 'nextCursor'], properties: { data: { type: 'array', items: ref(item) }, nextCursor: { type: ['string', 'null'] } } });
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' }, description: 'tenant id' };
const keyIdParam = { name: 'keyId', in: 'path', required: true, schema: { type: 'string' }, description: 'API key id' };
const pageParams = [
  { name: 'cursor', in: 'query', schema: { type: 'string' }, description: 'nextCursor of the previous page' },
  { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
];
const common = {
  '400': err('malformed body, unknown field, invalid value'),
  '401': err('missing or wrong admin token'),
  '403': err('the admin token lacks the scope this operation needs (forbidden)'),
};
const limits = {
  type: 'object',
  additionalProperties: false,
  properties: {
    rate: { type: ['object', 'null'], properties: { perSecond: { type: 'number' }, burst: { type: 'integer' } } },
    quota: { type: ['object', 'null'], properties: { daily: { type: ['integer', 'null'] }, monthly: { type: ['integer', 'null'] } } },
    concurrency: { type: ['integer', 'null'] },
    limits: {
      type: 'object',
      description: "named limits of the plan (SPEC §11): new numbers of the same kind, or null to disable one",
      additionalProperties: { type: ['object', 'null'], properties: { rate: { type: 'object' }, quota: { type: 'object' }, concurrency: { type: 'integer' } } },
    },
  },
};
const billingDay = { type: 'integer', minimum: 1, maximum: 31, description: 'the day each 1mo limit window starts (default 1)' };
const limitUse = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    kind: { enum: ['rate', 'quota', 'concurrency'] },
    per: { enum: ['tenant', 'project', 'key', 'subject'] },
    used: { type: ['integer', 'null'] },
    limit: { type: 'integer' },
    remaining: { type: ['integer', 'null'] },
    resetAt: { type: ['string', 'null'], format: 'date-time' },
  },
};
const tenantSnapshot = { description: 'the tenant', content: { 'application/json': { schema: ref('Tenant') } } };

export const OPENAPI = {
  openapi: '3.1.0',
  info: { title: 'tenantgate admin API', version: '1', description: 'Dynamic tenants and API keys (SPEC §9). Off unless admin.token or admin.tokens is set. Each operation lists the admin-token scope it needs under security (admin.token has them all).' },
  components: {
    securitySchemes: { adminToken: { type: 'http', scheme: 'bearer' } },
    schemas: {
      Error: {
        type: 'object',
        required: ['error'],
        properties: { error: { type: 'object', required: ['code', 'message', 'requestId'], properties: { code: { type: 'string' }, message: { type: 'string' }, requestId: { type: 'string' } } } },
      },
      Limits: limits,
      Tenant: {
        type: 'object',
        required: ['id', 'plan', 'status', 'hosts', 'overrides', 'source'],
        properties: {
          id: { type: 'string' },
          plan: { type: 'string' },
          status: { enum: ['active', 'suspended', 'deleted'] },
          hosts: { type: 'array', items: { type: 'string' } },
          billingDay,
          overrides: ref('Limits'),
          source: { enum: ['config', 'admin'], description: 'config: from the YAML file (read-only here)' },
          createdAt: { type: 'string', format: 'date-time' },
          updatedAt: { type: 'string', format: 'date-time' },
        },
      },
      KeyRecord: {
        type: 'object',
        description: 'an API key record; never the hash nor the plaintext',
        required: ['id', 'tenant', 'scopes', 'env', 'revoked', 'source'],
        properties: {
          id: { type: 'string' },
          tenant: { type: 'string' },
          project: { type: 'string' },
          scopes: { type: 'array', items: { type: 'string' } },
          env: { enum: ['live', 'test'] },
          expiresAt: { type: 'string', format: 'date-time' },
          revoked: { type: 'boolean' },
          rate: { type: 'object', properties: { perSecond: { type: 'number' }, burst: { type: 'integer' } } },
          createdAt: { type: 'string', format: 'date-time' },
          updatedAt: { type: 'string', format: 'date-time' },
          lastUsedAt: { type: 'string', format: 'date-time' },
          rotatedTo: { type: 'string' },
          source: { enum: ['config', 'admin'] },
        },
      },
      NewKey: {
        type: 'object',
        required: ['key', 'record'],
        properties: { key: { type: 'string', description: 'the plaintext key, shown once' }, record: ref('KeyRecord'), previous: ref('KeyRecord') },
      },
      Period: {
        type: 'object',
        properties: { period: { type: 'string' }, used: { type: ['integer', 'null'] }, limit: { type: ['integer', 'null'] }, remaining: { type: ['integer', 'null'] }, resetAt: { type: 'string', format: 'date-time' } },
      },
    },
  },
  security: [{ adminToken: [] }],
  paths: {
    '/admin/tenants': {
      post: {
        summary: 'Create a tenant',
        requestBody: jsonBody({
          type: 'object',
          additionalProperties: false,
          required: ['id', 'plan'],
          properties: { id: { type: 'string' }, plan: { type: 'string' }, status: { enum: ['active', 'suspended'] }, hosts: { type: 'array', items: { type: 'string' } }, billingDay, overrides: ref('Limits') },
        }),
        responses: { '201': tenantSnapshot, ...common, '409': err('the id exists (in the registry or the config file), or a host belongs to another tenant') },
      },
      get: {
        summary: 'List tenants (config and admin); deleted ones only with status=deleted',
        parameters: [{ name: 'plan', in: 'query', schema: { type: 'string' } }, { name: 'status', in: 'query', schema: { enum: ['active', 'suspended', 'deleted'] } }, ...pageParams],
        responses: { '200': ok('a page of tenants', page('Tenant')), ...common },
      },
    },
    '/admin/tenants/{id}': {
      parameters: [idParam],
      get: {
        summary: 'A tenant, with its quota use in the current day and month',
        responses: {
          '200': ok('the tenant', {
            allOf: [ref('Tenant'), { type: 'object', properties: { usage: { type: 'object', properties: { daily: ref('Period'), monthly: ref('Period') } }, limits: { type: ['array', 'null'], items: limitUse } } }],
          }),
          ...common,
          '404': err('no such tenant'),
        },
      },
      patch: {
        summary: 'Change plan, hosts or overrides (in force on every replica within 1 s)',
        requestBody: jsonBody({ type: 'object', additionalProperties: false, properties: { plan: { type: 'string' }, hosts: { type: 'array', items: { type: 'string' } }, billingDay, overrides: ref('Limits') } }),
        responses: { '200': tenantSnapshot, ...common, '404': err('no such tenant'), '409': err('defined in the config file, deleted, or a host conflict') },
      },
      delete: {
        summary: 'Delete (deactivate): the tenant becomes unknown to the proxy; the record and id are kept',
        responses: { '200': tenantSnapshot, ...common, '404': err('no such tenant'), '409': err('defined in the config file, or already deleted') },
      },
    },
    '/admin/tenants/{id}/suspend': {
      parameters: [idParam],
      post: { summary: 'Suspend: 403 tenant_suspended on every replica within 1 s', responses: { '200': tenantSnapshot, ...common, '404': err('no such tenant'), '409': err('config tenant or deleted') } },
    },
    '/admin/tenants/{id}/activate': {
      parameters: [idParam],
      post: { summary: 'Activate a suspended tenant', responses: { '200': tenantSnapshot, ...common, '404': err('no such tenant'), '409': err('config tenant or deleted') } },
    },
    '/admin/tenants/{id}/keys': {
      parameters: [idParam],
      post: {
        summary: 'Create an API key; the plaintext is in this answer only',
        requestBody: jsonBody({
          type: 'object',
          additionalProperties: false,
          properties: {
            id: { type: 'string' },
            project: { type: 'string' },
            scopes: { type: 'array', items: { type: 'string' } },
            env: { enum: ['live', 'test'] },
            expiresAt: { type: 'string', format: 'date-time' },
            rate: { type: 'object', properties: { perSecond: { type: 'number' }, burst: { type: 'integer' } } },
          },
        }),
        responses: { '201': ok('the new key', ref('NewKey')), ...common, '404': err('no such tenant'), '409': err("the key id exists, or the tenant is deleted (conflict); past the plan's entitlements (entitlement_exceeded)") },
      },
      get: { summary: "The tenant's keys (config and admin), never a hash", parameters: pageParams, responses: { '200': ok('a page of keys', page('KeyRecord')), ...common, '404': err('no such tenant') } },
    },
    '/admin/tenants/{id}/usage': {
      parameters: [idParam],
      get: {
        summary: 'Quota use now, and totals over a period from the usage sink (redis-stream or file) where one is configured',
        parameters: [
          { name: 'from', in: 'query', schema: { type: 'string' }, description: 'YYYY-MM-DD or ISO date-time; default the start of this month' },
          { name: 'to', in: 'query', schema: { type: 'string' }, description: 'YYYY-MM-DD (inclusive) or ISO date-time; default now' },
        ],
        responses: {
          '200': ok('usage', { type: 'object', properties: { tenant: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, quota: { type: 'object' }, totals: { type: ['object', 'null'] } } }),
          ...common,
          '404': err('no such tenant'),
        },
      },
    },
    '/admin/keys/{keyId}': {
      parameters: [keyIdParam],
      get: { summary: 'One key record, never its hash', responses: { '200': ok('the key', ref('KeyRecord')), ...common, '404': err('no such key') } },
      delete: { summary: 'Revoke: 401 on every replica within 1 s', responses: { '200': ok('the revoked key', ref('KeyRecord')), ...common, '404': err('no such key'), '409': err('defined in the config file') } },
    },
    '/admin/registry/confirm': {
      post: {
        summary: 'Confirm a registry found emptied (registry_emptied): restored, or accepted as it is; every replica reloads it',
        responses: {
          '200': ok('confirmed', { type: 'object', properties: { confirmed: { type: 'boolean' }, before: { type: ['string', 'null'] }, problem: { type: ['string', 'null'] } } }),
          ...common,
          '409': err('this registry kind needs no confirmation'),
          '503': err('the registry store is unavailable'),
        },
      },
    },
    '/admin/keys/{keyId}/rotate': {
      parameters: [keyIdParam],
      post: {
        summary: 'Rotate: a new key now; the old one keeps working for overlapSec, then stops',
        requestBody: jsonBody({ type: 'object', additionalProperties: false, properties: { overlapSec: { type: 'integer', minimum: 0, maximum: 2592000, default: 0 } } }),
        responses: { '201': ok('the new key, and the old record as it now stands', ref('NewKey')), ...common, '404': err('no such key'), '409': err('config key, revoked or already rotated') },
      },
    },
    '/admin/openapi.json': {
      get: { summary: 'This document', responses: { '200': { description: 'OpenAPI 3.1' }, '401': err('missing or wrong admin token') } },
    },
  },
} as const;

type Document = typeof OPENAPI;

/** `doc` with each operation's `security` naming the scope its route needs (bearer role names, as OpenAPI 3.1 allows). */
export function withScopes(doc: Document, routes: readonly { method: string; path: string; scope: string | null }[]): Document {
  const out = structuredClone(doc) as unknown as { paths: Record<string, Record<string, Record<string, unknown>>> };
  for (const r of routes) {
    const op = out.paths[r.path]?.[r.method.toLowerCase()];
    if (op !== undefined && r.scope !== null) op.security = [{ adminToken: [r.scope] }];
  }
  return out as unknown as Document;
}
