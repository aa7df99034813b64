import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxy, startUpstream, type RunningProxy, type Upstream } from '../helpers/servers.js';

describe('smoke: proxy in front of a recording upstream', () => {
  let upstream: Upstream;
  let proxy: RunningProxy;
  beforeAll(async () => {
    upstream = await startUpstream();
    proxy = await startProxy(`
routes:
  - name: public
    match: { pathPrefix: / }
    upstream: ${upstream.url}
    auth: [none]
`);
  });
  afterAll(async () => {
    await proxy.close();
    await upstream.close();
  });

  it('forwards a GET and returns the upstream answer with a request id', async () => {
    const res = await fetch(`${proxy.url}/hello?x=1`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, url: '/hello?x=1' });
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(upstream.requests).toHaveLength(1);
    expect(upstream.requests[0]!.headers['x-request-id']).toBe(res.headers.get('x-request-id'));
  });
});
