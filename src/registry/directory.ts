/**
 * The in-process view of dynamic tenants and keys, and how it stays fresh.
 *
 * Precedence: the YAML file is a read-only seed and wins. A lookup checks the
 * config's tenants / apiKeys first, then the registry; the admin API refuses
 * (409) to create or change an id the file defines.
 *
 * - Tenants are few: all of them are held in memory on every replica (loaded
 *   at start) and merged with the config's into the live tenant directory and
 *   limits map that the config object carries, so the hot path stays one map
 *   lookup. An invalidation `tenant:<id>` re-reads just that record.
 * - Keys may be 100k+: looked up on demand (one Redis call for a cold key),
 *   verdicts cached by the ApiKeyVerifier (10 s, negative lookups too).
 *   `key:<id>` drops that id's cached verdicts on every replica.
 * - Every mutation publishes its invalidation (Redis pub/sub); the replica
 *   that made it applies it locally at once. Delivery is milliseconds, so a
 *   change is in force everywhere well within 1 s. While the subscriber is
 *   disconnected, caches fall back to a 0.5 s TTL and tenants are re-read
 *   twice a second, which keeps the 1 s bound (a message lost while the
 *   subscriber reconnects costs at most that TTL plus one lookup); on reconnect every cache is
 *   dropped (messages may have been missed). If Redis itself cannot answer a
 *   cold lookup, `failureMode: open` keeps serving the last verdict for that
 *   exact key (as the limits fall back to local ones); `closed` answers 503.
 * - `lastUsedAt` is noted in memory on each verification and written in
 *   batches by a timer — never on the request path.
 */
import { ApiKeyVerifier } from '../auth/api-key-verifier.js';
import { indexKeys } from '../auth/runtime.js';
import { compileTenants } from '../auth/tenants.js';
import type { Tenant, TenantDirectory } from '../domain.js';
import type { CompiledConfig } from '../config/compile.js';
import type { Config } from '../config/schema.js';
import { compileLimits, type EffectiveLimits } from '../limits/plans.js';
import type { Logger } from '../observability/logger.js';
import type { Invalidation, Registry, TenantRecord } from './types.js';

/** Cache TTL (verified keys, unknown ids) while invalidations cannot arrive; also the tenant poll interval then. */
export const FALLBACK_TTL_MS = 500;

interface Attached {
  readonly config: CompiledConfig;
  readonly yamlTenants: TenantDirectory;
  readonly yamlLimits: ReadonlyMap<string, EffectiveLimits>;
  readonly byId: Map<string, Tenant>;
  readonly hostOwner: Map<string, string>;
  readonly wildcardOwners: { suffix: string; tenantId: string }[];
  readonly limits: Map<string, EffectiveLimits>;
  readonly verifier: ApiKeyVerifier;
}

export interface DirectoryOptions {
  registry: Registry;
  logger: Logger;
  pepper: string | null;
  /** How often pending `lastUsedAt` values are written (default 5 s; the file registry rewrites its file). */
  touchIntervalMs?: number;
}

export class Directory {
  readonly registry: Registry;
  private readonly logger: Logger;
  /** TENANTGATE_KEY_PEPPER: keys the admin API creates are hashed with it (HMAC), like `keys generate`. */
  readonly pepper: string | null;
  /** Every dynamic tenant record, deleted ones included. */
  private tenants = new Map<string, TenantRecord>();
  private current: Attached | null = null;
  /** Subscriber connected: invalidations arrive. */
  private live = false;
  private readonly pendingUse = new Map<string, number>();
  /** lastUsedAt of every key this replica saw used (config keys have no record to write it to). */
  readonly lastUsed = new Map<string, string>();
  /** Latest refresh per tenant id, so an older answer never overwrites a newer one. */
  private readonly refreshSeq = new Map<string, number>();
  private readonly timers: NodeJS.Timeout[] = [];
  /** Problems already logged (a missing plan, a case twin of a config tenant), so each is logged once. */
  private readonly warnedPlans = new Set<string>();

  constructor(opts: DirectoryOptions) {
    this.registry = opts.registry;
    this.logger = opts.logger;
    this.pepper = opts.pepper;
    const touch = setInterval(() => void this.flushUse(), opts.touchIntervalMs ?? 5000);
    const poll = setInterval(() => {
      if (!this.live) void this.reloadTenants();
    }, FALLBACK_TTL_MS);
    touch.unref();
    poll.unref();
    this.timers.push(touch, poll);
  }

  /** Loads every tenant and subscribes to invalidations. A registry that cannot answer yet is retried by the poll. */
  async start(): Promise<void> {
    await this.reloadTenants();
    this.registry.subscribe({
      message: (m) => this.onMessage(m),
      reset: () => this.reset(),
      status: (live) => {
        if (live === this.live) return;
        this.live = live;
        if (!live) {
          this.logger.warn('registry invalidations unavailable; caches fall back to a 0.5 s TTL');
          this.current?.verifier.expireWithin(FALLBACK_TTL_MS);
        } else this.logger.info('registry invalidations connected');
      },
    });
  }

  /**
   * Makes a freshly loaded config see the registry: its tenant directory and
   * limits map become live ones (config entries first, registry entries where
   * the config has none), and its key verifier looks in the registry after
   * the config's keys. Called at start and on every reload.
   */
  attach(config: CompiledConfig): CompiledConfig {
    const yamlKeys = indexKeys(config.source.apiKeys);
    const registry = this.registry;
    const verifier = new ApiKeyVerifier({
      lookup: (id) => {
        const own = yamlKeys.get(id);
        if (own !== undefined) return own;
        const r = registry.getKey(id);
        return r instanceof Promise ? r.then((x) => x ?? undefined) : (r ?? undefined);
      },
      pepper: this.pepper,
      cacheTtl: () => (this.live ? undefined : FALLBACK_TTL_MS),
      // failureMode open: while Redis cannot answer, a key verified before keeps working (like the limits).
      staleOnError: config.source.store.failureMode === 'open',
      onVerified: (id, now) => void this.pendingUse.set(id, now),
    });
    const attached: Attached = {
      config,
      yamlTenants: config.tenants,
      yamlLimits: config.limits,
      byId: new Map(),
      hostOwner: new Map(),
      wildcardOwners: [],
      limits: new Map(),
      verifier,
    };
    this.current = attached;
    this.rebuild();
    const tenants: TenantDirectory = { byId: attached.byId, hostOwner: attached.hostOwner, wildcardOwners: attached.wildcardOwners };
    return Object.freeze({ ...config, tenants, limits: attached.limits, auth: Object.freeze({ ...config.auth, apiKeys: verifier }) });
  }

  /** A dynamic tenant record (deleted ones included), or undefined. */
  tenant(id: string): TenantRecord | undefined {
    return this.tenants.get(id);
  }

  allTenants(): TenantRecord[] {
    return [...this.tenants.values()];
  }

  /** After a mutation on this replica: in force here at once, and on the others when they get the message. */
  async changed(m: Invalidation, tenant?: TenantRecord): Promise<void> {
    if (tenant !== undefined) {
      this.refreshSeq.set(tenant.id, (this.refreshSeq.get(tenant.id) ?? 0) + 1);
      this.tenants.set(tenant.id, tenant);
      this.rebuild();
    } else if (m.startsWith('key:')) this.current?.verifier.forget(m.slice(4));
    try {
      await this.registry.publish(m);
    } catch (err) {
      // The others fall back on their cache TTL (10 s) for this change.
      this.logger.error({ err: (err as Error).message, invalidation: m }, 'could not publish an invalidation');
    }
  }

  private onMessage(m: string): void {
    if (m === 'all') this.reset();
    else if (m.startsWith('key:')) this.current?.verifier.forget(m.slice(4));
    else if (m.startsWith('tenant:')) void this.refreshTenant(m.slice(7));
  }

  private reset(): void {
    this.current?.verifier.expireAll();
    void this.reloadTenants();
  }

  private async refreshTenant(id: string): Promise<void> {
    const seq = (this.refreshSeq.get(id) ?? 0) + 1;
    this.refreshSeq.set(id, seq);
    try {
      const t = await this.registry.getTenant(id);
      if (this.refreshSeq.get(id) !== seq) return;
      if (t === null) this.tenants.delete(id);
      else this.tenants.set(id, t);
      this.rebuild();
    } catch (err) {
      this.logger.error({ err: (err as Error).message, tenant: id }, 'could not re-read a tenant; retrying from the full list');
      setTimeout(() => void this.reloadTenants(), FALLBACK_TTL_MS).unref();
    }
  }

  private async reloadTenants(): Promise<void> {
    try {
      const list = await this.registry.listTenants();
      this.tenants = new Map(list.map((t) => [t.id, t]));
      this.rebuild();
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'could not load tenants from the registry');
    }
  }

  /** Recomputes the live directory and limits in place (tenants are few; a mutation is rare). */
  private rebuild(): void {
    const a = this.current;
    if (a === null) return;
    const plans = a.config.source.plans;
    const dynamic: Config['tenants'] = [];
    // The file wins over a registry tenant of the same id, and of the same id but for case (made before
    // the admin API refused those, or a file tenant added since): never two tenants an upstream could merge.
    const yamlFolded = new Map<string, string>();
    for (const id of a.yamlTenants.byId.keys()) yamlFolded.set(id.toLowerCase(), id);
    for (const t of this.tenants.values()) {
      if (t.status === 'deleted' || a.yamlTenants.byId.has(t.id)) continue;
      const twin = yamlFolded.get(t.id.toLowerCase());
      if (twin !== undefined) {
        if (!this.warnedPlans.has(`case:${t.id}`)) this.logger.warn({ tenant: t.id, configTenant: twin }, 'registry tenant differs only in case from a config tenant; refused until renamed');
        this.warnedPlans.add(`case:${t.id}`);
        continue;
      }
      if (plans[t.plan] === undefined) {
        // Fail closed: a tenant whose plan left the config is unknown, never unlimited.
        if (!this.warnedPlans.has(`${t.id}:${t.plan}`)) this.logger.warn({ tenant: t.id, plan: t.plan }, 'tenant names a plan the config no longer has; refused until fixed');
        this.warnedPlans.add(`${t.id}:${t.plan}`);
        continue;
      }
      dynamic.push({ id: t.id, plan: t.plan, status: t.status, hosts: [...t.hosts], billingDay: t.billingDay ?? 1, overrides: t.overrides });
    }
    const dyn = compileTenants(dynamic);
    const dynLimits = compileLimits({ plans, tenants: dynamic } as Config);
    a.byId.clear();
    a.hostOwner.clear();
    a.wildcardOwners.length = 0;
    a.limits.clear();
    for (const d of [dyn, a.yamlTenants]) {
      for (const [id, t] of d.byId) a.byId.set(id, t);
      for (const [h, id] of d.hostOwner) a.hostOwner.set(h, id);
    }
    a.wildcardOwners.push(...dyn.wildcardOwners.filter((w) => !a.yamlTenants.wildcardOwners.some((y) => y.suffix === w.suffix)), ...a.yamlTenants.wildcardOwners);
    a.wildcardOwners.sort((x, y) => y.suffix.length - x.suffix.length);
    for (const [id, l] of dynLimits) a.limits.set(id, l);
    for (const [id, l] of a.yamlLimits) a.limits.set(id, l);
  }

  private async flushUse(): Promise<void> {
    if (this.pendingUse.size === 0) return;
    const batch = new Map<string, string>();
    for (const [id, ms] of this.pendingUse) {
      const iso = new Date(ms).toISOString();
      batch.set(id, iso);
      this.lastUsed.set(id, iso);
    }
    this.pendingUse.clear();
    try {
      await this.registry.touchKeys(batch);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, keys: batch.size }, 'could not write lastUsedAt');
    }
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    await this.flushUse();
    await this.registry.close();
  }
}
