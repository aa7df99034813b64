/**
 * Whether a Redis can be trusted to keep the registry (SPEC §14): its
 * `maxmemory-policy` and its persistence, read with CONFIG GET, or from INFO
 * where CONFIG is disabled or renamed (managed Redis).
 *
 * Registry keys never carry a TTL (records, id sets and the epoch marker are
 * written without EXPIRE), so a `volatile-*` policy, which only evicts keys
 * with a TTL, cannot evict them; `allkeys-*` can, and is refused.
 */
import { Cluster, ReplyError, type Redis } from 'ioredis';

export type PolicyVerdict = 'safe' | 'evicting' | 'unknown';

export function classifyPolicy(policy: string): PolicyVerdict {
  const p = policy.trim().toLowerCase();
  if (p === 'noeviction' || p.startsWith('volatile-')) return 'safe';
  if (p.startsWith('allkeys-')) return 'evicting';
  return 'unknown';
}

/** aof / rdb: something persists; none: neither is on; unknown: could not be read. */
export type Persistence = 'aof' | 'rdb' | 'aof+rdb' | 'none' | 'unknown';

export function classifyPersistence(appendonly: string | null, save: string | null, infoAofEnabled: string | null): Persistence {
  const aof = appendonly !== null ? appendonly.trim().toLowerCase() === 'yes' : infoAofEnabled !== null ? infoAofEnabled.trim() === '1' : null;
  const rdb = save === null ? null : save.trim() !== '';
  if (aof === true) return rdb === true ? 'aof+rdb' : 'aof';
  if (rdb === true) return 'rdb';
  if (aof === false && rdb === false) return 'none';
  return 'unknown';
}

/** `field:value` lines of an INFO reply. */
export function parseInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return out;
}

export interface DurabilityReport {
  /** The policy name, or null when neither CONFIG nor INFO told it. */
  readonly policy: string | null;
  readonly verdict: PolicyVerdict;
  readonly persistence: Persistence;
}

/** A reply error (unknown command, NOPERM) means "not allowed here"; a connection error is rethrown. */
function refused(err: unknown): null {
  if (err instanceof ReplyError) return null;
  throw err;
}

/** CONFIG GET <name>'s value; null when CONFIG is refused (disabled, renamed, ACL). */
async function configGet(node: Redis, name: string): Promise<string | null> {
  try {
    const reply = (await node.config('GET', name)) as unknown as string[];
    const i = reply.indexOf(name);
    return i >= 0 && i + 1 < reply.length ? reply[i + 1]! : null;
  } catch (err) {
    return refused(err);
  }
}

async function info(node: Redis, section: string): Promise<Map<string, string>> {
  try {
    return parseInfo(await node.info(section));
  } catch (err) {
    return refused(err) ?? new Map();
  }
}

async function checkNode(node: Redis): Promise<DurabilityReport> {
  const [policyConf, appendonly, save] = [await configGet(node, 'maxmemory-policy'), await configGet(node, 'appendonly'), await configGet(node, 'save')];
  const policy = policyConf ?? (await info(node, 'memory')).get('maxmemory_policy') ?? null;
  const aofInfo = appendonly === null ? ((await info(node, 'persistence')).get('aof_enabled') ?? null) : null;
  return { policy, verdict: policy === null ? 'unknown' : classifyPolicy(policy), persistence: classifyPersistence(appendonly, save, aofInfo) };
}

const VERDICT_RANK: Record<PolicyVerdict, number> = { safe: 0, unknown: 1, evicting: 2 };
const PERSISTENCE_RANK: Record<Persistence, number> = { aof: 0, 'aof+rdb': 0, rdb: 0, unknown: 1, none: 2 };

/** Reads every master (one for a single Redis); the worst node decides. Throws only if Redis cannot answer at all. */
export async function checkDurability(client: Redis | Cluster): Promise<DurabilityReport> {
  const nodes = client instanceof Cluster ? client.nodes('master') : [client];
  const reports = await Promise.all(nodes.map(checkNode));
  if (reports.length === 0) return { policy: null, verdict: 'unknown', persistence: 'unknown' };
  let worst = reports[0]!;
  let persistence = worst.persistence;
  for (const r of reports) {
    if (VERDICT_RANK[r.verdict] > VERDICT_RANK[worst.verdict]) worst = r;
    if (PERSISTENCE_RANK[r.persistence] > PERSISTENCE_RANK[persistence]) persistence = r.persistence;
  }
  return { policy: worst.policy, verdict: worst.verdict, persistence };
}

/** The refusal, naming the setting and the fix. */
export function evictingMessage(target: string, policy: string): string {
  return (
    `the registry Redis ${target} has maxmemory-policy ${policy}, which can evict tenants and API keys (read as revoked). ` +
    'Set maxmemory-policy to noeviction (CONFIG SET maxmemory-policy noeviction, and in redis.conf), ' +
    'or point registry.redis at a Redis that does not evict (or use registry.postgres).'
  );
}

/** A Redis URL (or Cluster node list) without its credentials, for logs and errors. */
export function redactTarget(target: string | readonly string[]): string {
  const one = (u: string) => u.replace(/\/\/[^@/]*@/, '//');
  return typeof target === 'string' ? one(target) : target.map(one).join(',');
}
