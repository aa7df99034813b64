/**
 * helm/tenantgate/values.schema.json, which helm checks values against on
 * install, upgrade, lint and template (no helm binary here: ajv, draft-07 as
 * helm reads it): the chart's values.yaml, the ci/ values and every Helm
 * values example in docs/deploy.md (fenced as ```yaml helm-values) pass; a
 * typo'd key, a wrong type, an out-of-range port or an unknown enum value
 * fails with its path; and the schema and values.yaml describe the same
 * settings. Plus the native-sidecar switch in the Deployment template.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../../src/config/load.js';
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

  const docExamples = [...readFileSync(join(ROOT, 'docs/deploy.md'), 'utf8').matchAll(/```yaml helm-values\n([\s\S]*?)```/g)].map((m) => parseYaml(m[1]!) as Tree);

  it('accepts every Helm values example in docs/deploy.md, and the configs they carry validate', () => {
    expect(docExamples.length).toBeGreaterThanOrEqual(2);
    for (const [i, over] of docExamples.entries()) {
      expect(errorsOf(over), `example ${i + 1}`).toEqual([]);
      const merged = merge(values, over);
      const ports = merged.ports as Tree;
      const env = { TENANTGATE_LISTEN_PORT: String(ports.http), TENANTGATE_ADMIN_PORT: String(ports.admin), TENANTGATE_ADMIN_HOST: '0.0.0.0' };
      expect(() => parseConfig(merged.config as string, `deploy.md example ${i + 1}`, env)).not.toThrow();
    }
    expect(docExamples.some((e) => (e.sidecar as Tree | undefined)?.native === true)).toBe(true);
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
    ['native as a string', { mode: 'sidecar', sidecar: { native: 'true' } }, '/sidecar/native', 'type', undefined],
    ['a native sidecar in standalone mode', { mode: 'standalone', sidecar: { native: true } }, '/mode', 'const', undefined],
    ['a typo beside native', { sidecar: { nativ: true } }, '/sidecar', 'additionalProperties', 'nativ'],
    ['an app container named like the proxy', { sidecar: { app: { name: 'tenantgate' } } }, '/sidecar/app/name', 'not', undefined],
    ['an app container name that is not a DNS label', { sidecar: { app: { name: 'My_App' } } }, '/sidecar/app/name', 'pattern', undefined],
    ['a number as an annotation', { podAnnotations: { 'prometheus.io/port': 9901 } }, '/podAnnotations/prometheus.io~1port', 'type', undefined],
    ['an env entry without a name', { extraEnv: [{ value: 'x' }] }, '/extraEnv/0', 'required', undefined],
    ['a memory limit that is not a quantity', { resources: { limits: { memory: '384 MB' } } }, '/resources/limits/memory', 'pattern', undefined],
    ['a volume mount without a path', { extraVolumeMounts: [{ name: 'keys' }] }, '/extraVolumeMounts/0', 'required', undefined],
    ['an image pull secret with a typo', { imagePullSecrets: [{ nmae: 'regcred' }] }, '/imagePullSecrets/0', 'additionalProperties', 'nmae'],
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

describe('Deployment template: the native sidecar', () => {
  const deployment = readFileSync(join(CHART, 'templates/deployment.yaml'), 'utf8');
  const helpers = readFileSync(join(CHART, 'templates/_helpers.tpl'), 'utf8');

  it('is sidecar mode with sidecar.native, decided in one named template', () => {
    expect(helpers).toMatch(/define "tenantgate\.nativeSidecar"[\s\S]*?and \(eq \.Values\.mode "sidecar"\) \.Values\.sidecar\.native/);
    expect(deployment).toContain('{{- $native := include "tenantgate.nativeSidecar" . }}');
  });

  it('puts the proxy in initContainers with restartPolicy: Always, and the app in containers', () => {
    // The proxy's list opens as initContainers when native, else containers; the app's list follows it when native.
    expect(deployment).toMatch(/\{\{- if \$native \}\}[^{]*initContainers:\s*\{\{- else \}\}\s*containers:\s*\{\{- end \}\}\s*- name: tenantgate/);
    expect(deployment).toMatch(/- name: tenantgate\s*\n\s*image: .*\n\s*\{\{- if \$native \}\}\n\s*restartPolicy: Always\n\s*\{\{- end \}\}/);
    expect(deployment).toMatch(/\{\{- if eq \.Values\.mode "sidecar" \}\}\s*\{\{- if \$native \}\}\n {6}containers:\n\s*\{\{- end \}\}/);
  });

  it('the proxy has no preStop when native (it stops after the app); the app then sleeps only the endpoint delay', () => {
    expect(deployment).toContain('{{- if and (gt (int .Values.shutdown.preStopSleepSeconds) 0) (not $native) }}');
    expect(deployment).toMatch(/\{\{- else if gt \(int \.Values\.shutdown\.preStopSleepSeconds\) 0 \}\}[\s\S]*?command: \["sleep", \{\{ \.Values\.shutdown\.preStopSleepSeconds \| int \| quote \}\}\]/);
  });
});
