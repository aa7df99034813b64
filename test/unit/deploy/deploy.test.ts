/**
 * Deployment artefacts, checked without helm or a Docker engine (neither runs
 * on these machines):
 *
 * - the Helm chart: every file that is not a template parses as YAML; every
 *   `.Values.x.y` a template reads exists in values.yaml, and every setting in
 *   values.yaml is read by some template (no dead reference documentation);
 *   template blocks are balanced and named templates defined; the ci/ values
 *   files only set keys values.yaml has; the config embedded in the default
 *   values and in ci/ passes `tenantgate validate`, with the environment the
 *   Deployment gives it, and then agrees with the chart's ports, spool mount
 *   and drain time;
 * - config/examples/: each example validates (in-process and with the CLI);
 * - the Dockerfile's essentials: multi-stage, production-only install, a
 *   numeric non-root USER, exec-form node entrypoint, EXPOSE of both ports,
 *   HEALTHCHECK, and a .dockerignore that lets in what COPY needs; and node
 *   as PID 1 (a PID namespace of its own) drains on SIGTERM and exits 0;
 * - with a helm binary ($HELM or on the PATH; none here): helm lint --strict
 *   and checks on the rendered manifests.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ConfigError, formatProblem, loadConfig, parseConfig } from '../../../src/config/load.js';
import { until } from '../../helpers/life-process.js';
import { MAIN, ROOT } from '../../helpers/servers.js';

const CHART = join(ROOT, 'helm/tenantgate');
const EXAMPLES = join(ROOT, 'config/examples');
const read = (path: string) => readFileSync(path, 'utf8');

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}

type Tree = Record<string, unknown>;
const isMap = (v: unknown): v is Tree => v !== null && typeof v === 'object' && !Array.isArray(v);

const values = parseYaml(read(join(CHART, 'values.yaml'))) as Tree;
const templateFiles = walk(join(CHART, 'templates'));
const templates = templateFiles.map((file) => ({ file: relative(CHART, file), text: read(file) }));
const ciValueFiles = readdirSync(join(CHART, 'ci')).filter((f) => f.endsWith('.yaml'));

/** `.Values.a.b.c` (or `$.Values…`) references, outside {{/* comments *\/}}. */
function valueRefs(text: string): string[] {
  const code = text.replace(/\{\{-?\s*\/\*[\s\S]*?\*\/\s*-?\}\}/g, '');
  return [...code.matchAll(/\$?\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)].map((m) => m[1]!.slice(1));
}

/** Whether `path` (a.b.c) exists in `tree`: every segment is a key of the map above it. */
function hasPath(tree: Tree, path: string): boolean {
  let node: unknown = tree;
  for (const key of path.split('.')) {
    if (!isMap(node) || !Object.hasOwn(node, key)) return false;
    node = node[key];
  }
  return true;
}

/** Every key path of values.yaml, down to leaves and to free-form maps/lists. */
function keyPaths(tree: Tree, prefix = ''): string[] {
  return Object.entries(tree).flatMap(([k, v]) => {
    const path = prefix + k;
    return isMap(v) && Object.keys(v).length > 0 ? [path, ...keyPaths(v, `${path}.`)] : [path];
  });
}

/** Values rendered whole with `toYaml`: Kubernetes objects passed through, whose keys the chart does not define. */
const passThrough = new Set(templates.flatMap(({ text }) => [...text.matchAll(/toYaml \$?\.Values\.([A-Za-z0-9_.]+)/g)].map((m) => m[1]!)));

/** Keys an override file sets that values.yaml does not have (empty maps, lists and pass-through objects take anything). */
function unknownKeys(override: Tree, base: Tree, prefix = ''): string[] {
  return Object.entries(override).flatMap(([k, v]) => {
    const path = prefix + k;
    if (!Object.hasOwn(base, k)) return [path];
    const b = base[k];
    return isMap(v) && isMap(b) && Object.keys(b).length > 0 && !passThrough.has(path) ? unknownKeys(v, b, `${path}.`) : [];
  });
}

/** The environment the Deployment gives the proxy for these values (its env: list and the Secret's keys). */
function chartEnv(v: Tree): NodeJS.ProcessEnv {
  const get = (path: string) => path.split('.').reduce<unknown>((n, k) => (isMap(n) ? n[k] : undefined), v);
  const env: NodeJS.ProcessEnv = {
    TENANTGATE_LISTEN_PORT: String(get('ports.http')),
    TENANTGATE_ADMIN_PORT: String(get('ports.admin')),
    TENANTGATE_ADMIN_HOST: '0.0.0.0',
    TENANTGATE_SPOOL_DIR: String(get('spool.mountPath')),
    TENANTGATE_SHUTDOWN_GRACE_MS: String(get('shutdown.graceMs')),
  };
  const secrets: [string, string][] = [
    ['REDIS_URL', 'secret.redisUrl'],
    ['TENANTGATE_ADMIN_TOKEN', 'secret.adminToken'],
    ['TENANTGATE_ASSERTION_SECRET', 'secret.assertionSecret'],
    ['TENANTGATE_KEY_PEPPER', 'secret.keyPepper'],
  ];
  for (const [name, path] of secrets) if (get(path)) env[name] = String(get(path));
  for (const [name, value] of Object.entries((get('secret.jwtSecrets') as Tree | undefined) ?? {})) if (value) env[name] = String(value);
  return env;
}

/** values.yaml with an override file merged in (maps deeply, everything else replaced), as helm does. */
function merge(base: Tree, override: Tree): Tree {
  const out: Tree = { ...base };
  for (const [k, v] of Object.entries(override)) out[k] = isMap(v) && isMap(base[k]) ? merge(base[k], v) : v;
  return out;
}

async function problemsOf(file: string, env: NodeJS.ProcessEnv): Promise<string[]> {
  try {
    await loadConfig(file, env);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map(formatProblem);
    throw err;
  }
}

const tmp = mkdtempSync(join(tmpdir(), 'tg-deploy-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
function writeConfig(name: string, text: string): string {
  const file = join(tmp, name);
  writeFileSync(file, text);
  return file;
}

describe('Helm chart: files that are not templates', () => {
  const plain = walk(CHART).filter((f) => /\.ya?ml$/.test(f) && !f.startsWith(join(CHART, 'templates')));

  it.each(plain.map((f) => relative(CHART, f)))('%s parses as YAML', (file) => {
    expect(() => parseYaml(read(join(CHART, file)))).not.toThrow();
    expect(isMap(parseYaml(read(join(CHART, file))))).toBe(true);
  });

  it('Chart.yaml is a v2 application chart whose appVersion is the package version', () => {
    const chart = parseYaml(read(join(CHART, 'Chart.yaml'))) as Tree;
    const pkg = JSON.parse(read(join(ROOT, 'package.json'))) as { version: string };
    expect(chart).toMatchObject({ apiVersion: 'v2', name: 'tenantgate', type: 'application', appVersion: pkg.version });
    expect(chart.version).toMatch(/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/);
  });

  it.each(ciValueFiles)('ci/%s sets only keys that values.yaml has', (file) => {
    expect(unknownKeys(parseYaml(read(join(CHART, 'ci', file))) as Tree, values)).toEqual([]);
  });
});

describe('Helm chart: templates', () => {
  it('every .Values reference exists in values.yaml', () => {
    const missing = templates.flatMap(({ file, text }) => valueRefs(text).filter((r) => !hasPath(values, r)).map((r) => `${file}: .Values.${r}`));
    expect(missing).toEqual([]);
    expect(templates.flatMap(({ text }) => valueRefs(text)).length).toBeGreaterThan(50);
  });

  it('every setting in values.yaml is read by a template', () => {
    const refs = new Set(templates.flatMap(({ text }) => valueRefs(text)));
    const read = (path: string) => [...refs].some((r) => r === path || r.startsWith(`${path}.`) || path.startsWith(`${r}.`));
    expect(keyPaths(values).filter((p) => !read(p))).toEqual([]);
  });

  it('no `with` on .Values, so the reference check above is exact', () => {
    for (const { file, text } of templates) expect(text, file).not.toMatch(/\{\{-?\s*with\s+\$?\.Values/);
  });

  it.each(templateFiles.map((f) => relative(CHART, f)))('%s: blocks are balanced and named templates defined', (file) => {
    const text = read(join(CHART, file)).replace(/\{\{-?\s*\/\*[\s\S]*?\*\/\s*-?\}\}/g, '');
    const actions = [...text.matchAll(/\{\{-?\s*(if|range|with|define|block|end)\b/g)].map((m) => m[1]);
    let depth = 0;
    for (const a of actions) {
      depth += a === 'end' ? -1 : 1;
      expect(depth, `${file}: {{ end }} without a block`).toBeGreaterThanOrEqual(0);
    }
    expect(depth, `${file}: unclosed block`).toBe(0);
    expect(text.split('{{').length, `${file}: unbalanced {{ }}`).toBe(text.split('}}').length);
    const defined = new Set(templates.flatMap(({ text: t }) => [...t.matchAll(/\{\{-?\s*define\s+"([^"]+)"/g)].map((m) => m[1])));
    for (const [, name] of text.matchAll(/include\s+"([^"]+)"/g)) expect(defined, `${file}: include "${name}"`).toContain(name);
  });

  const deployment = read(join(CHART, 'templates/deployment.yaml'));

  it('the Deployment probes /healthz (liveness, startup) and /readyz (readiness) on the admin port', () => {
    expect(deployment).toMatch(/livenessProbe:\s*\n\s*httpGet: \{ path: \/healthz, port: admin \}/);
    expect(deployment).toMatch(/startupProbe:\s*\n\s*httpGet: \{ path: \/healthz, port: admin \}/);
    expect(deployment).toMatch(/readinessProbe:\s*\n\s*httpGet: \{ path: \/readyz, port: admin \}/);
    expect(deployment).toMatch(/- name: admin\s*\n\s*containerPort: \{\{ \.Values\.ports\.admin \}\}/);
  });

  it('the Deployment drains: preStop sleep, a grace period that covers it, config and secret checksums', () => {
    expect(deployment).toMatch(/preStop:[\s\S]*command: \["sleep"/);
    expect(deployment).toContain('terminationGracePeriodSeconds: {{ include "tenantgate.terminationGracePeriodSeconds" . }}');
    const helpers = read(join(CHART, 'templates/_helpers.tpl'));
    expect(helpers).toMatch(/add \(int \.Values\.shutdown\.preStopSleepSeconds\) \(include "tenantgate\.graceSeconds" \. \| int\) 10/);
    expect(deployment).toContain('checksum/config:');
    expect(deployment).toContain('checksum/secret:');
  });

  it('the proxy runs non-root on a read-only root filesystem, with its spool on a volume', () => {
    expect(values.podSecurityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
    expect(values.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(deployment).toMatch(/- name: spool\s*\n\s*mountPath: \{\{ \.Values\.spool\.mountPath \}\}/);
    expect(deployment).toMatch(/- name: spool\s*\n\s*emptyDir:/);
    expect(deployment).toContain('enableServiceLinks: false');
  });

  it('the environment the chart promises is the one the Deployment and the Secret set', () => {
    const set = new Set([...deployment.matchAll(/- name: (TENANTGATE_[A-Z_]+)/g)].map((m) => m[1]));
    const fromSecret = [...read(join(CHART, 'templates/secret.yaml')).matchAll(/^\s*([A-Z_]+): \{\{/gm)].map((m) => m[1]);
    const promised = Object.keys(chartEnv({ ...values, secret: { ...(values.secret as Tree), redisUrl: 'x', adminToken: 'x', assertionSecret: 'x', keyPepper: 'x' } }));
    expect([...set, ...fromSecret].sort()).toEqual(promised.sort());
    expect(deployment).toMatch(/envFrom:\s*\n\s*- secretRef:\s*\n\s*name: \{\{ include "tenantgate.secretName" \. \}\}/);
  });

  it('the Service targets the proxy port, never the app', () => {
    const service = read(join(CHART, 'templates/service.yaml'));
    expect(service).toContain('targetPort: http');
    expect(service).not.toMatch(/sidecar\.app\.port/);
    expect(deployment).not.toMatch(/containerPort: \{\{ \.Values\.sidecar/);
  });
});

describe('Helm chart: the embedded config passes `tenantgate validate`', () => {
  const cases: [name: string, v: Tree][] = [
    ['values.yaml', values],
    ...ciValueFiles.map((f): [string, Tree] => [`ci/${f}`, merge(values, parseYaml(read(join(CHART, 'ci', f))) as Tree)]),
  ];

  it.each(cases)('%s, with the environment the Deployment sets', async (name, v) => {
    const file = writeConfig(`${name.replace('/', '-')}.tenantgate.yaml`, v.config as string);
    expect(await problemsOf(file, chartEnv(v))).toEqual([]);
    // …and the process then listens where the probes, Services and spool volume expect it.
    const { source } = parseConfig(v.config as string, file, chartEnv(v));
    const get = (path: string) => path.split('.').reduce<unknown>((n, k) => (isMap(n) ? n[k] : undefined), v);
    expect(source.listen.port).toBe(get('ports.http'));
    expect(source.admin).toMatchObject({ host: '0.0.0.0', port: get('ports.admin') });
    expect(source.usage.spoolDir).toBe(get('spool.mountPath'));
    expect(source.shutdownGraceMs).toBe(get('shutdown.graceMs'));
    if (get('mode') === 'sidecar') {
      for (const r of source.routes) expect(r.upstream).toBe(`http://127.0.0.1:${String(get('sidecar.app.port'))}`);
    }
  });

  it('the default config is valid without any environment too (tenantgate validate on the ConfigMap as is)', async () => {
    expect(await problemsOf(writeConfig('bare.yaml', values.config as string), {})).toEqual([]);
  });
});

/** A helm binary, if the machine has one (CI here has none): $HELM, else `helm` on the PATH. */
const HELM = process.env.HELM ?? 'helm';
const hasHelm = spawnSync(HELM, ['version', '--short'], { encoding: 'utf8' }).status === 0;

describe.skipIf(!hasHelm)('Helm chart: rendered by helm (skipped without a helm binary)', () => {
  const helm = (...args: string[]) => {
    const run = spawnSync(HELM, args, { encoding: 'utf8', cwd: ROOT });
    expect(run.status, run.stderr).toBe(0);
    return run.stdout;
  };
  type Manifest = { kind: string; metadata: { name: string; labels?: Tree }; spec?: any; data?: Tree };
  const render = (...args: string[]) =>
    helm('template', 'rel', CHART, ...args)
      .split(/^---$/m)
      .map((doc) => parseYaml(doc) as Manifest | null)
      .filter((m): m is Manifest => m !== null);
  const setups: [name: string, args: string[]][] = [
    ['defaults', []],
    ...ciValueFiles.map((f): [string, string[]] => [`ci/${f}`, ['-f', join(CHART, 'ci', f)]]),
  ];

  it.each(setups)('helm lint --strict: %s', (_name, args) => {
    helm('lint', '--strict', CHART, ...args);
  });

  it.each(setups)('%s: the Service, probes, volumes and Secret fit the pod; the ConfigMap validates', async (name, args) => {
    const docs = render(...args);
    const byKind = (kind: string) => docs.filter((d) => d.kind === kind);
    const [deployment] = byKind('Deployment');
    const pod = deployment!.spec.template;
    expect(deployment!.spec.selector.matchLabels).toEqual(expect.objectContaining(pod.metadata.labels));
    // A native sidecar (sidecar.native) is one of the init containers.
    const containers = [...(pod.spec.initContainers ?? []), ...pod.spec.containers];
    const proxy = containers.find((c: { name: string }) => c.name === 'tenantgate');
    const portNames = new Set(containers.flatMap((c: { ports?: { name: string }[] }) => (c.ports ?? []).map((p) => p.name)));
    for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) expect(proxy[probe].httpGet.path).toMatch(/^\/(healthz|readyz)$/);
    // A probe's named port is looked up among its own container's ports.
    for (const c of containers) {
      const own = (c.ports ?? []).map((p: { name: string }) => p.name);
      for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
        const port = c[probe]?.httpGet?.port;
        if (typeof port === 'string') expect(own, `${c.name}.${probe}`).toContain(port);
      }
    }
    for (const svc of byKind('Service')) {
      expect(svc.spec.selector).toEqual(deployment!.spec.selector.matchLabels);
      for (const p of svc.spec.ports) expect(portNames).toContain(p.targetPort);
    }
    expect(byKind('Service').find((s) => s.metadata.name === 'rel-tenantgate')!.spec.ports.map((p: { targetPort: string }) => p.targetPort)).toEqual(['http']);
    const volumes = new Set(pod.spec.volumes.map((v: { name: string }) => v.name));
    for (const m of proxy.volumeMounts) expect(volumes).toContain(m.name);
    const [configMap] = byKind('ConfigMap');
    expect(pod.spec.volumes.find((v: { name: string }) => v.name === 'config').configMap.name).toBe(configMap!.metadata.name);
    expect(byKind('Secret').map((s) => s.metadata.name)).toContain(proxy.envFrom[0].secretRef.name);
    // The config exactly as the pod will read it, with the pod's environment.
    const env: NodeJS.ProcessEnv = Object.fromEntries(proxy.env.map((e: { name: string; value: string }) => [e.name, e.value]));
    for (const [k, v] of Object.entries(byKind('Secret')[0]!.data ?? {})) env[k] = Buffer.from(String(v), 'base64').toString();
    const file = writeConfig(`rendered-${name.replace('/', '-')}.yaml`, String(configMap!.data!['tenantgate.yaml']));
    expect(await problemsOf(file, env)).toEqual([]);
    // SIGKILL comes after the preStop sleep (a native sidecar has none: its app's comes first), the drain and the usage flush.
    const { source } = parseConfig(read(file), file, env);
    const hook = (proxy.lifecycle ?? containers.find((c: { name: string }) => c !== proxy)?.lifecycle)?.preStop;
    const preStop = Number(hook?.exec?.command[1] ?? hook?.sleep?.seconds ?? 0);
    expect(pod.spec.terminationGracePeriodSeconds).toBeGreaterThan(preStop + (source.shutdownGraceMs + source.usage.flushTimeoutMs) / 1000);
  });
});

describe('config/examples', () => {
  // Each example documents the variables it needs; the rest have defaults.
  const required: Record<string, NodeJS.ProcessEnv> = {
    'oidc-jwt-roles.yaml': { TENANTGATE_JWT_SCHEDULER_SECRET: 'a-scheduler-secret-of-32-characters!!' },
    'redis-multi-replica.yaml': { REDIS_URL: 'redis://redis:6379' },
  };
  const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml'));

  it('has one example per situation', () => {
    expect(files.sort()).toEqual(['legacy-api-keys.yaml', 'oidc-jwt-roles.yaml', 'redis-multi-replica.yaml', 'subdomain-tenants.yaml']);
  });

  it.each(files)('%s is valid on its own and inside the chart', async (file) => {
    const env = required[file] ?? {};
    expect(await problemsOf(join(EXAMPLES, file), env)).toEqual([]);
    expect(await problemsOf(join(EXAMPLES, file), { ...chartEnv(values), ...env })).toEqual([]);
    // Every example is written for the chart: it reads the variables the Deployment sets.
    const text = read(join(EXAMPLES, file));
    for (const name of ['TENANTGATE_LISTEN_PORT', 'TENANTGATE_ADMIN_HOST', 'TENANTGATE_ADMIN_PORT', 'TENANTGATE_SPOOL_DIR', 'TENANTGATE_SHUTDOWN_GRACE_MS']) {
      expect(text, `${file} reads ${name}`).toContain(`\${${name}`);
    }
  });

  it.each(Object.entries(required))('%s names its required variables when they are missing', async (file, env) => {
    const problems = await problemsOf(join(EXAMPLES, file), {});
    expect(problems).toHaveLength(Object.keys(env).length);
    for (const name of Object.keys(env)) expect(problems.join('\n')).toContain(`environment variable ${name} is not set`);
  });

  it.skipIf(!existsSync(MAIN))('`tenantgate validate` (the built CLI) accepts every example and the chart default', () => {
    const env = { ...process.env, ...Object.assign({}, ...Object.values(required)) } as NodeJS.ProcessEnv;
    const chartDefault = writeConfig('cli-default.yaml', values.config as string);
    for (const file of [...files.map((f) => join(EXAMPLES, f)), chartDefault]) {
      const run = spawnSync(process.execPath, [MAIN, 'validate', '-c', file], { env, encoding: 'utf8' });
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout).toContain(`${file}: valid`);
    }
  });
});

describe('Dockerfile', () => {
  const text = read(join(ROOT, 'Dockerfile'));
  // Instructions, with `\` continuations joined and comments dropped.
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/);
      return { op: op!.toUpperCase(), args: rest.join(' ') };
    });
  const stages: { from: string; lines: { op: string; args: string }[] }[] = [];
  for (const ins of instructions) {
    if (ins.op === 'FROM') stages.push({ from: ins.args, lines: [] });
    else stages.at(-1)?.lines.push(ins);
  }
  const runtime = stages.at(-1)!;
  const runtimeArgs = (op: string) => runtime.lines.filter((l) => l.op === op).map((l) => l.args);

  it('is multi-stage: a build stage with dev dependencies, a runtime on a slim or distroless Node base', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(text).toMatch(/RUN npm ci --no-audit/);
    expect(text).toMatch(/RUN npm run build/);
    expect(runtime.from).toMatch(/^(node:\S*-slim|gcr\.io\/distroless\/nodejs\S*)/);
    const nodeMajor = /ARG NODE_VERSION=(\d+)/.exec(text)?.[1];
    expect(Number(nodeMajor) % 2, 'an LTS (even) Node major').toBe(0);
  });

  it('installs production dependencies only into the runtime image', () => {
    expect(text).toMatch(/npm ci --omit=dev/);
    const copies = runtimeArgs('COPY');
    const nodeModules = copies.filter((c) => c.includes('node_modules'));
    expect(nodeModules).toHaveLength(1);
    const stageName = /--from=(\S+)/.exec(nodeModules[0]!)?.[1];
    const source = stages.find((s) => s.from.endsWith(` AS ${stageName!}`));
    expect(source?.lines.some((l) => l.op === 'RUN' && l.args.includes('--omit=dev'))).toBe(true);
    expect(copies.some((c) => /dist/.test(c))).toBe(true);
  });

  it('runs as a numeric non-root USER', () => {
    const user = runtimeArgs('USER').at(-1);
    expect(user).toMatch(/^\d+(:\d+)?$/);
    expect(Number(user!.split(':')[0])).toBeGreaterThan(0);
  });

  it('starts node directly in exec form (PID 1 gets SIGTERM), serving the config under /etc/tenantgate', () => {
    const entrypoint = JSON.parse(runtimeArgs('ENTRYPOINT').at(-1)!) as string[];
    expect(entrypoint[0]).toBe('node');
    expect(entrypoint[1]).toMatch(/dist\/main\.js$/);
    expect(JSON.parse(runtimeArgs('CMD').at(-1)!)).toEqual(['serve', '-c', '/etc/tenantgate/tenantgate.yaml']);
    expect(deploymentArgs()).toEqual(['serve', '-c', '/etc/tenantgate/tenantgate.yaml']);
  });

  it('exposes the data and admin ports (the chart defaults) and has a HEALTHCHECK on /healthz', () => {
    const exposed = runtimeArgs('EXPOSE').flatMap((a) => a.split(/\s+/)).map(Number);
    expect(exposed).toEqual(expect.arrayContaining([(values.ports as Tree).http, (values.ports as Tree).admin]));
    expect(runtimeArgs('HEALTHCHECK').join(' ')).toMatch(/CMD \["node".*\/healthz/);
  });

  it('.dockerignore lets in every path COPY takes from the build context, and keeps node_modules out', () => {
    const ignore = read(join(ROOT, '.dockerignore'))
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    expect(ignore[0]).toBe('**');
    const allowed = ignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1));
    const sources = instructions
      .filter((i) => i.op === 'COPY' && !i.args.includes('--from='))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    for (const src of sources) expect(allowed, src).toContain(src.split('/')[0]);
    expect(ignore).toContain('**/node_modules');
  });

  // What the image's entrypoint does, in a PID namespace of its own (as root: CI and the dev machines are).
  const canUnshare = existsSync(MAIN) && spawnSync('unshare', ['-p', '-f', '--mount-proc', 'true']).status === 0;

  it.skipIf(!canUnshare)('node as PID 1 drains on SIGTERM and exits 0 (no init process needed)', async () => {
    const spool = join(tmp, 'pid1-spool');
    mkdirSync(spool);
    const file = writeConfig('pid1.yaml', values.config as string);
    const env = { ...process.env, ...chartEnv(values), TENANTGATE_LISTEN_PORT: '0', TENANTGATE_ADMIN_PORT: '0', TENANTGATE_ADMIN_HOST: '127.0.0.1', TENANTGATE_SPOOL_DIR: spool, TENANTGATE_SHUTDOWN_GRACE_MS: '2000' };
    const child = spawn('unshare', ['-p', '-f', '--mount-proc', process.execPath, MAIN, 'serve', '-c', file], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let node: number | undefined;
    try {
      const listening = await until(() => out.split('\n').find((l) => l.includes('tenantgate listening')), 'the listening log line', 10_000);
      const adminPort = (JSON.parse(listening) as { admin: { port: number } }).admin.port;
      node = Number(read(`/proc/${child.pid!}/task/${child.pid!}/children`).trim().split(/\s+/)[0]);
      expect(read(`/proc/${node}/status`)).toMatch(/^NSpid:\s+\d+\s+1$/m);
      expect((await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status).toBe(200);
      process.kill(node, 'SIGTERM');
      expect(await exited, out).toBe(0);
      expect(out).toMatch(/"msg":"draining"[\s\S]*"msg":"stopped"/);
    } finally {
      if (child.exitCode === null) {
        if (node !== undefined) process.kill(node, 'SIGKILL');
        child.kill('SIGKILL');
      }
    }
  });

  function deploymentArgs(): string[] {
    const m = /args: (\[.*\])/.exec(read(join(CHART, 'templates/deployment.yaml')));
    return JSON.parse(m![1]!) as string[];
  }
});
