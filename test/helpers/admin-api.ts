/** Calls the admin API of a running proxy, as a client would (fetch, JSON). */
export const ADMIN_TOKEN = 'test-admin-token-0123456789';

export interface AdminAnswer {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  headers: Headers;
}

export async function admin(adminUrl: string, method: string, path: string, body?: unknown, token: string | null = ADMIN_TOKEN): Promise<AdminAnswer> {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${adminUrl}${path}`, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** Polls `probe` until it returns true; resolves with the time it took (ms), or throws after `ms`. */
export async function within(ms: number, probe: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await probe()) return Date.now() - start;
    if (Date.now() - start > ms) throw new Error(`not true within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** GET <url>/x with the key; the status. */
export async function callWith(url: string, key: string, path = '/x'): Promise<number> {
  const res = await fetch(`${url}${path}`, { headers: { 'x-api-key': key } });
  await res.arrayBuffer();
  return res.status;
}
