/**
 * helm/tenantgate/values.schema.json, which helm checks values against on
 * install, upgrade, lint and template (no helm binary here: ajv, draft-07 as
 * helm reads it): the chart's values.yaml and the ci/ values pass; a typo'd
 * key, a wrong type, an out-of-range port or an unknown enum value fails
 * with its path; and the schema and values.yaml describe the same settings.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ROOT } from '../../helpers/servers.js';

const CHART = join(ROOT, 'helm/tenantgate');
type Tree = Record<string, unknown>;
const isMap = (v: unknown): v is Tree => v !== null && typeof v === 'object' && !Array.isArray(v);

const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as Tree;
const validate = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(schema);
const values = parseYaml(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Tree;

/** `base` with `over` merged in as helm merges values: maps deeply, everything else replaced. */
function merge(base: Tree, over: Tree): Tree {
  const out: Tree = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isMap(v) && isMap(base[k]) ? merge(base[k] as Tree, v) : v;
  return out;
}

function errorsOf(over: Tree): ErrorObject[] {
  return validate(merge(values, over)) ? [] : validate.errors!;
}

/** Every path to a leaf or an empty map/list, e.g. `probes.startup.periodSeconds`. */
function paths(tree: Tree, prefix = ''): string[] {
  return Object.entries(tree).flatMap(([k, v]) => (isMap(v) && Object.keys(v).length > 0 ? paths(v, `${prefix}${k}.`) : [`${prefix}${k}`]));
}

/** The schema's declared settings: walked into where a property has its own `properties`; others (Kubernetes objects passed through) end there. */
function schemaPaths(node: Tree, prefix = ''): string[] {
  const props = (node.properties ?? {}) as Record<string, Tree>;
  return Object.entries(props).flatMap(([k, v]) => (v.properties !== undefined ? schemaPaths(v, `${prefix}${k}.`) : [`${prefix}${k}`]));
}

/** Settings the schema may name that values.yaml leaves out: set by a parent chart, or a Kubernetes field the chart passes on. */
const SCHEMA_ONLY = new Set(['global', 'resources.claims']);

describe('Helm values.schema.json', () => {
  it('accepts values.yaml and every ci/ values file merged over it', () => {
    expect(validate(values), JSON.stringify(validate.errors)).toBe(true);
    for (const f of readdirSync(join(CHART, 'ci'))) {
      const over = parseYaml(readFileSync(join(CHART, 'ci', f), 'utf8')) as Tree;
      expect(errorsOf(over), f).toEqual([]);
    }
  });

  it.each([
    ['a typo at the top', { replicaCont: 3 }, '', 'additionalProperties', 'replicaCont'],
    ['a typo deeper down', { probes: { readiness: { periodSecond: 5 } } }, '/probes/readiness', 'additionalProperties', 'periodSecond'],
    ['an unknown mode', { mode: 'gateway' }, '/mode', 'enum', undefined],
    ['a port out of range', { ports: { http: 70000 } }, '/ports/http', 'maximum', undefined],
    ['a number as a string', { replicaCount: '3' }, '/replicaCount', 'type', undefined],
    ['an unknown Service type', { service: { type: 'Internal' } }, '/service/type', 'enum', undefined],
    ['an unknown pull policy', { sidecar: { app: { image: { pullPolicy: 'Sometimes' } } } }, '/sidecar/app/image/pullPolicy', 'enum', undefined],
    ['a short admin token', { secret: { adminToken: 'short' } }, '/secret/adminToken', 'pattern', undefined],
    ['a REDIS_URL that is not one', { secret: { redisUrl: 'redis.internal:6379' } }, '/secret/redisUrl', 'pattern', undefined],
    ['a PDB percentage that is not one', { podDisruptionBudget: { minAvailable: 'half' } }, '/podDisruptionBudget/minAvailable', 'pattern', undefined],
  ])('refuses %s, naming where', (_name, over, path, keyword, property) => {
    const errors = errorsOf(over as Tree);
    expect(errors.map((e) => [e.instancePath, e.keyword, (e.params as { additionalProperty?: string }).additionalProperty])).toContainEqual([path, keyword, property]);
  });

  it('accepts what Kubernetes accepts where the chart passes values through', () => {
    expect(errorsOf({ image: { tag: 1.2 }, resources: { requests: { cpu: 0.5, memory: '256Mi' } }, podDisruptionBudget: { enabled: true, minAvailable: '50%', maxUnavailable: null }, global: { imageRegistry: 'x' } })).toEqual([]);
  });

  it('describes exactly the settings values.yaml has', () => {
    const declared = schemaPaths(schema);
    const inValues = paths(values);
    // Every setting of values.yaml is declared (or inside an object the schema passes through)…
    for (const p of inValues) expect(declared.some((d) => p === d || p.startsWith(`${d}.`)), p).toBe(true);
    // …and every declared one is in values.yaml, documented there.
    for (const d of declared.filter((x) => !SCHEMA_ONLY.has(x))) expect(inValues.some((p) => p === d || p.startsWith(`${d}.`)), d).toBe(true);
  });
});
