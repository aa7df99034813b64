/**
 * The config schema of named limits (SPEC §11): a plan's `limits:` list, its
 * `entitlements`, and a tenant's `overrides.limits`. Values stay within
 * ./bounds.ts, as the shorthands' do.
 */
import { z } from 'zod';
import { BOUNDS, validRate } from './bounds.js';

const positiveInt = z.number().int().positive();

/** Shorthand names: a named limit cannot take one (the 429 and the metric would be ambiguous). */
export const SHORTHAND_NAMES: readonly string[] = ['rate', 'quota_daily', 'quota_monthly', 'concurrency'];

/** A token for a header (`"name"` in RateLimit-Policy) and a metric label. */
export const limitName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'must be 1-64 characters of letters, digits, . _ - (starting with a letter or digit)')
  .refine((n) => !SHORTHAND_NAMES.includes(n), 'is a shorthand\'s name (rate, quota_daily, quota_monthly, concurrency)');

const UNIT_S: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** A rate's window: `<n>s|m|h|d`, in seconds (null: not one). */
export function windowSeconds(w: string): number | null {
  const m = /^([1-9][0-9]{0,5})(s|m|h|d)$/.exec(w);
  return m === null ? null : Number(m[1]) * UNIT_S[m[2]!]!;
}

const rateWindow = z.string().refine((w) => windowSeconds(w) !== null, 'must be a duration such as 1s, 10s, 1m, 1h, 1d');
export const QUOTA_WINDOWS = ['1m', '1h', '1d', '1mo'] as const;
export type QuotaWindow = (typeof QUOTA_WINDOWS)[number];
const quotaWindow = z.enum(QUOTA_WINDOWS, { error: 'must be one of 1m, 1h, 1d, 1mo' });
const quotaLimit = z.number().int().nonnegative().max(BOUNDS.quotaMax);
const concurrency = positiveInt.max(BOUNDS.concurrencyMax);

/** A rate as a token bucket: `limit` per window refills continuously; `burst` (default `limit`) is the bucket's size. */
export function bucketOf(rate: { limit: number; window: string; burst?: number | undefined }): { perSecond: number; burst: number } {
  return { perSecond: rate.limit / windowSeconds(rate.window)!, burst: rate.burst ?? rate.limit };
}

const rateFields = { limit: positiveInt.max(BOUNDS.burstMax), window: rateWindow, burst: positiveInt.max(BOUNDS.burstMax).optional() };
const rate = z.strictObject(rateFields).refine((r) => validRate(bucketOf(r).perSecond, bucketOf(r).burst), {
  message: `limit / window must be at least ${BOUNDS.rateMin} per second and burst take at most ${BOUNDS.refillMaxS} s to refill; use a quota for longer windows`,
});
const quota = z.strictObject({ limit: quotaLimit, window: quotaWindow });

export const namedLimit = z
  .strictObject({
    name: limitName,
    /** Route names (checked against `routes:`); omitted: every route. */
    routes: z.array(z.string().min(1)).min(1).optional(),
    methods: z
      .array(z.string().transform((m) => m.toUpperCase()).pipe(z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE'])))
      .min(1)
      .optional(),
    per: z.enum(['tenant', 'project', 'key', 'subject']).default('tenant'),
    rate: rate.optional(),
    quota: quota.optional(),
    concurrency: concurrency.optional(),
  })
  .refine((l) => [l.rate, l.quota, l.concurrency].filter((x) => x !== undefined).length === 1, 'set exactly one of rate, quota, concurrency');

export const namedLimits = z
  .array(namedLimit)
  .max(32)
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((l, i) => {
      if (seen.has(l.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate limit name "${l.name}"` });
      seen.add(l.name);
    });
  });

export const entitlements = z.strictObject({ apiKeys: z.number().int().nonnegative().optional(), projects: z.number().int().nonnegative().optional() });

/** `overrides.limits.<name>`: new numbers for the plan's limit of that name (same kind), or null to disable it. */
export const limitOverride = z
  .strictObject({
    rate: z.strictObject(rateFields).partial().optional(),
    quota: quota.partial().optional(),
    concurrency: concurrency.optional(),
  })
  .nullable();
export const limitOverrides = z.record(limitName, limitOverride);

export type NamedLimitConfig = z.infer<typeof namedLimit>;
export type LimitOverride = z.infer<typeof limitOverride>;
