/**
 * The sanitize stage's header rules, compiled once per config: which client
 * headers never reach the upstream, and which are credentials (kept only when
 * the route forwards them).
 */
import { HeaderRule } from '../domain.js';

const HOP_BY_HOP = [
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'proxy-authorization', 'proxy-authenticate', 'expect', 'host', 'http2-settings',
  // HTTP/2 pseudo-headers (Node lists them in rawHeaders): routing reads them; the upstream request gets its own.
  ':authority', ':method', ':path', ':scheme', ':protocol',
];
const CLIENT_FORWARDING = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'forwarded', 'x-real-ip'];
const CREDENTIAL_HEADERS = ['authorization', 'x-api-key'];

/** Header rules for one config: identity header names come from `identity.headers`. */
export function compileHeaderRules(identityHeaderNames: readonly string[], trustProxy: boolean): ReadonlyMap<string, HeaderRule> {
  const rules = new Map<string, HeaderRule>();
  for (const name of [...HOP_BY_HOP, ...SPEC_IDENTITY_HEADERS, ...identityHeaderNames.map((n) => n.toLowerCase())]) rules.set(name, HeaderRule.Drop);
  // With trustProxy the client's X-Forwarded-For is read from req.headers and extended by forward.
  for (const name of trustProxy ? ['x-forwarded-for'] : CLIENT_FORWARDING) rules.set(name, HeaderRule.Drop);
  for (const name of CREDENTIAL_HEADERS) rules.set(name, HeaderRule.Credential);
  return rules;
}

/** The SPEC §5 names: stripped even when identity.headers renames them, since an upstream may still read them. */
const SPEC_IDENTITY_HEADERS = ['x-tenant-id', 'x-tenant-plan', 'x-project-id', 'x-api-key-id', 'x-subject', 'x-scopes', 'x-roles', 'x-request-id', 'x-tenant-assertion'];
