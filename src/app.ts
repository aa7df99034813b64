/**
 * Starts and stops a tenantgate instance: data server, admin server, config
 * reload (SIGHUP or file change, via `reload()`), and the SIGTERM drain of
 * SPEC §8. The CLI, the demo and the tests all start the proxy through here.
 */
import type { AddressInfo, Server } from 'node:net';
import { createAdminServer } from './admin/server.js';
import { ConfigError, formatProblem, loadConfig } from './config/load.js';
import { watchConfigFile } from './config/watch.js';
import { createLogger, type Logger } from './observability/logger.js';
import { Metrics, traceSpanCounters } from './observability/metrics.js';
import { createLimitStore } from './limits/index.js';
import { createDirectory } from './registry/index.js';
import { createUsageRecorder } from './usage/index.js';
import { Pipeline } from './pipeline.js';
import { LEASE_TTL_MS } from './limits/types.js';
import { createDataServer } from './server.js';
import { ProxyState } from './state.js';
import type { RequestContext } from './context.js';
import type { Tracer } from './tracing/hooks.js';
import type { Config } from './config/schema.js';

const STORE_CONNECT_WAIT_MS = 3_000;

/**
 * The tracer when `tracing.otlp.url` is set, else null. Imported here, on
 * demand, so that with tracing off no OpenTelemetry module is ever loaded.
 */
async function createTracer(config: Config, metrics: Metrics, logger: Logger): Promise<Tracer<RequestContext> | null> {
  const tracing = config.tracing;
  if (tracing === null || tracing.otlp === null || tracing.otlp.url === null) return null;
  const { startTracer } = await import('./tracing/tracer.js');
  const counters = traceSpanCounters(metrics.registry);
  return startTracer(tracing, {
    logger,
    counts: { exported: (n) => counters.exported.inc(n), dropped: (reason, n) => counters.dropped.labels(reason).inc(n) },
  });
}

export interface StartOptions {
  configFile: string;
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  /** Watch the config file and reload on change (default true). */
  watch?: boolean;
}

export interface Tenantgate {
  readonly state: ProxyState;
  readonly dataAddress: AddressInfo;
  readonly adminAddress: AddressInfo;
  /** Re-reads the config file; an invalid one is logged and the old config keeps serving. */
  reload(): Promise<boolean>;
  /** SPEC §8 drain: stop accepting, /readyz 503, finish in-flight work within shutdownGraceMs. */
  shutdown(): Promise<void>;
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

export async function startTenantgate(options: StartOptions): Promise<Tenantgate> {
  const env = options.env ?? process.env;
  const config = await loadConfig(options.configFile, env);
  const logger = options.logger ?? createLogger(config.source.logging.level);
  const metrics = new Metrics();
  metrics.configure(config.source.metrics);
  const limits = createLimitStore(config.source.store, config.redisTls, logger, {
    onStatus: (up) => metrics.storeUp.set(up ? 1 : 0),
    onFailure: (reason) => metrics.storeFailures.labels(reason).inc(),
    onCredit: (event, n) => metrics.limitCredit.labels(event).inc(n),
  });
  // Before the ports open: a spool a crash left behind starts replaying now.
  // No sinks, no recorder: the account stage then builds no event at all.
  const usage = config.source.usage.sinks.length === 0 ? null : await createUsageRecorder(config.source.usage, {
    redis: config.source.store.redis,
    redisTls: config.redisTls,
    logger,
    onDelivery: (sink, outcome, count) => metrics.usageEvents.labels(sink, outcome).inc(count),
  }).catch(async (err: unknown) => {
    await limits.close();
    throw err;
  });
  // Give Redis a moment to connect before taking traffic (it keeps retrying after that); meanwhile the registry connects.
  const storeReady = limits.ready(STORE_CONNECT_WAIT_MS);
  // Dynamic tenants and keys (admin API): Redis or the local state file; every config is attached to it.
  const directory = await createDirectory(config.source, config.redisTls, logger, env, process.cwd(), STORE_CONNECT_WAIT_MS).catch(async (err: unknown) => {
    await usage?.close();
    await limits.close();
    throw err;
  });
  const state = new ProxyState(directory.attach(config), metrics, logger, limits, usage);
  state.directory = directory;
  metrics.claimItemsDroppedSource = () => state.config.auth.jwt?.droppedClaimItems?.() ?? new Map<string, number>();
  metrics.registryProblemSource = () => directory.registry.problem?.() ?? null;
  await storeReady;
  metrics.storeUp.set(limits.up ? 1 : 0);
  const leaseRenewal = setInterval(() => state.renewLeases(LEASE_TTL_MS), LEASE_TTL_MS / 3);
  leaseRenewal.unref();
  const tracer = await createTracer(config.source, metrics, logger);
  const pipeline = new Pipeline(state, tracer);

  let reloading: Promise<boolean> = Promise.resolve(true);
  const reloadOnce = async (): Promise<boolean> => {
    try {
      const next = await loadConfig(options.configFile, env, state.config);
      // Admin tokens apply at once (the admin API reads them per call); the rest of `admin` needs a restart.
      type Section = 'listen' | 'admin' | 'store' | 'registry' | 'usage' | 'tracing';
      const fixed = (c: typeof next.source, k: Section) => JSON.stringify(k === 'admin' ? { ...c.admin, token: null, tokens: [] } : c[k]);
      const restartOnly = (['listen', 'admin', 'store', 'registry', 'usage', 'tracing'] as const).filter((k) => fixed(next.source, k) !== fixed(state.config.source, k));
      if (restartOnly.length > 0) logger.warn({ sections: restartOnly }, 'config reload: these sections apply only after a restart');
      state.applyConfig(directory.attach(next));
      logger.level = next.source.logging.level;
      metrics.configure(next.source.metrics);
      metrics.configReloads.labels('success').inc();
      logger.info({ file: next.file, routes: next.routeList.length }, 'config reloaded');
      return true;
    } catch (err) {
      metrics.configReloads.labels('failure').inc();
      const problems = err instanceof ConfigError ? err.problems.map(formatProblem) : [String(err)];
      logger.error({ problems }, 'config reload rejected; the previous config keeps serving');
      return false;
    }
  };
  const reload = () => (reloading = reloading.then(reloadOnce));

  // Watching starts before the ports open, so no change made after start-up can be missed.
  const stopWatching = options.watch === false ? () => {} : watchConfigFile(options.configFile, () => state.config.contentHash, () => void reload());

  let data;
  try {
    data = createDataServer(config.source.listen, pipeline, logger);
  } catch (err) {
    await Promise.all([usage?.close(), tracer?.shutdown(), limits.close(), directory.close()]);
    clearInterval(leaseRenewal);
    stopWatching();
    throw err;
  }
  const admin = createAdminServer(state, {
    notReadyReason: () => {
      if (state.draining) return 'shutting_down';
      if (!limits.up && state.config.source.store.failureMode === 'closed') return 'store_unavailable';
      return null;
    },
    degraded: () => {
      const problem = directory.registry.problem?.() ?? null;
      return problem === null ? [] : [problem];
    },
  });
  const adminAddress = await listen(admin, config.source.admin.port, config.source.admin.host);
  const dataAddress = await listen(data.listener, config.source.listen.port, config.source.listen.host).catch(async (err: unknown) => {
    admin.close();
    data.stop();
    throw err;
  });
  logger.info({ data: dataAddress, admin: adminAddress, routes: config.routeList.length, file: config.file }, 'tenantgate listening');

  let shuttingDown: Promise<void> | null = null;
  const shutdown = () =>
    (shuttingDown ??= (async () => {
      state.draining = true;
      stopWatching();
      logger.info({ inflight: state.inflight, graceMs: state.config.source.shutdownGraceMs }, 'draining');
      const closed = new Promise<void>((resolve) => data.listener.close(() => resolve()));
      data.closeIdleConnections();
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), state.config.source.shutdownGraceMs);
      });
      const outcome = await Promise.race([state.whenIdle().then(() => 'idle' as const), grace]);
      clearTimeout(timer);
      if (outcome === 'timeout') logger.warn({ inflight: state.inflight }, 'grace period over; closing remaining connections');
      data.closeAllConnections();
      state.closeTunnels();
      await closed;
      data.stop();
      await state.pools.close();
      // Every request has been accounted by now: deliver or spool its usage event (and export its spans) before exiting.
      await Promise.all([usage?.close(), tracer?.shutdown()]);
      clearInterval(leaseRenewal);
      await limits.close();
      await directory.close();
      await new Promise<void>((resolve) => admin.close(() => resolve()));
      admin.closeAllConnections();
      logger.info('stopped');
    })());

  return { state, dataAddress, adminAddress, reload, shutdown };
}
