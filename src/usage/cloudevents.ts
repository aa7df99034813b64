/**
 * CloudEvents 1.0 encoding of usage events (SPEC §16), structured mode: one
 * JSON object per event. It runs in a sink's `send`, off the request path:
 * the recorder hands every sink the same §7 JSON line, and the line itself
 * becomes `data` verbatim (spliced in, not re-serialised).
 *
 * Request events get the configured `type`; quota warnings and admin audit
 * events have types of their own, so a billing system meters only requests.
 */

export type CloudEventSubject = 'tenant' | 'project' | 'key';

export interface CloudEventOptions {
  /** CloudEvents `type` of request events. */
  eventType: string;
  subject: CloudEventSubject;
  /** URI-reference naming this instance; each event's `source` is it plus `/routes/<route>` when there is a route. */
  source: string;
}

export const DEFAULT_EVENT_TYPE = 'tenantgate.request';
export const QUOTA_WARNING_TYPE = 'tenantgate.quota.warning';
export const AUDIT_TYPE = 'tenantgate.admin.audit';
/** The subject (and NATS subject token) of an event that names no tenant: a request refused before one was known. */
export const NO_TENANT = '_';
export const BATCH_CONTENT_TYPE = 'application/cloudevents-batch+json';

/**
 * The same on every replica: consumers such as OpenMeter de-duplicate on `source` and `id` together, and a spool
 * may be replayed by a pod with another name. Set `source` to name an instance when that is wanted.
 */
export const defaultSource = (): string => '//tenantgate';

/** The fields of a §7 line the envelope needs; everything else stays in `data` as it is. */
interface Fields {
  id?: unknown;
  ts?: unknown;
  type?: unknown;
  tenantId?: unknown;
  projectId?: unknown;
  apiKeyId?: unknown;
  route?: unknown;
  target?: { id?: unknown; type?: unknown; tenant?: unknown };
}

const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);

/** The tenant an event belongs to: an audit event's is the tenant it changed. */
export function eventTenant(e: Fields): string | null {
  if (e.type === 'audit') return str(e.target?.tenant) ?? (e.target?.type === 'tenant' ? str(e.target.id) : null);
  return str(e.tenantId);
}

/**
 * Project ids are attribution inside a tenant (two tenants may both have `web`),
 * so a project subject is `<tenant>/<project>`; tenant ids cannot contain `/`.
 * Without a project or key, the subject falls back to the tenant.
 */
function subjectOf(e: Fields, mode: CloudEventSubject): string {
  const tenant = eventTenant(e);
  if (mode === 'project' && tenant !== null && str(e.projectId) !== null) return `${tenant}/${str(e.projectId)}`;
  if (mode === 'key' && str(e.apiKeyId) !== null) return str(e.apiKeyId)!;
  return tenant ?? NO_TENANT;
}

function typeOf(e: Fields, requestType: string): string {
  if (e.type === undefined || e.type === 'request') return requestType;
  if (e.type === 'quota_warning') return QUOTA_WARNING_TYPE;
  if (e.type === 'audit') return AUDIT_TYPE;
  return `tenantgate.${String(e.type)}`;
}

/** Parsed §7 line plus its CloudEvent; `null` for a line that is not a JSON object with an id and a ts. */
export interface Encoded {
  readonly fields: Fields;
  readonly id: string;
  readonly json: string;
}

/** Returns a function turning one §7 JSON line into one CloudEvent JSON string. */
export function createCloudEventEncoder(opts: CloudEventOptions): (line: string) => Encoded | null {
  const type = JSON.stringify(opts.eventType);
  const base = JSON.stringify(opts.source);
  const perRoute = new Map<string, string>();
  const sourceOf = (route: string | null): string => {
    if (route === null) return base;
    let s = perRoute.get(route);
    if (s === undefined) {
      s = JSON.stringify(`${opts.source}/routes/${encodeURIComponent(route)}`);
      // Route names come from the config: the map stays as small as the route table.
      if (perRoute.size < 10_000) perRoute.set(route, s);
    }
    return s;
  };
  return (line) => {
    let e: Fields;
    try {
      e = JSON.parse(line) as Fields;
    } catch {
      return null;
    }
    const id = str(e?.id);
    const ts = str(e?.ts);
    if (id === null || ts === null) return null;
    const t = e.type === undefined || e.type === 'request' ? type : JSON.stringify(typeOf(e, opts.eventType));
    const json =
      `{"specversion":"1.0","type":${t},"id":${JSON.stringify(id)},"time":${JSON.stringify(ts)},` +
      `"source":${sourceOf(str(e.route))},"subject":${JSON.stringify(subjectOf(e, opts.subject))},` +
      `"datacontenttype":"application/json","data":${line}}`;
    return { fields: e, id, json };
  };
}

/**
 * A batch's CloudEvents. A line that cannot be encoded is left out: record()
 * only queues lines JSON.stringify made, so it can only be a spool line cut
 * short by a crash, which the spool readers drop as well.
 */
export function encodeBatch(lines: readonly string[], encode: (line: string) => Encoded | null): string[] {
  const out: string[] = [];
  for (const line of lines) {
    const ce = encode(line);
    if (ce !== null) out.push(ce.json);
  }
  return out;
}
