/** `routes[].protocol` and `routes[].tls` as the schema and the cross-section checks see them (SPEC §12). */
import { describe, expect, it } from 'vitest';
import { configProblems } from '../../helpers/config-problems.js';

const route = (extra: string, upstream = 'https://billing.internal:9443') => `routes:\n  - { name: r, match: { pathPrefix: /billing.v1.Billing/ }, upstream: "${upstream}", auth: [none]${extra} }\n`;

describe('routes[].protocol', () => {
  it('is http or grpc', () => {
    expect(configProblems(`listen: { http2: true }\n${route(', protocol: grpc')}`)).toEqual([]);
    expect(configProblems(route(', protocol: http'))).toEqual([]);
    expect(configProblems(route(', protocol: h2'))[0]).toMatch(/^routes\[0\]\.protocol: /);
  });

  it('grpc needs HTTP/2 on the data port', () => {
    expect(configProblems(route(', protocol: grpc'))).toEqual(['routes[0].protocol: grpc needs listen.http2: true (gRPC clients speak HTTP/2)']);
  });
});

describe('routes[].tls', () => {
  it('knows caFile, certFile, keyFile and servername, and nothing that turns verification off', () => {
    expect(configProblems(route(', tls: { caFile: ca.crt, certFile: c.crt, keyFile: c.key, servername: billing.internal }'))).toEqual([]);
    expect(configProblems(route(', tls: { rejectUnauthorized: false }'))[0]).toBe('routes[0].tls.rejectUnauthorized: unknown key "rejectUnauthorized"');
    expect(configProblems(route(', tls: { insecure: true }'))[0]).toBe('routes[0].tls.insecure: unknown key "insecure"');
  });

  it('a servername is a host name', () => {
    expect(configProblems(route(', tls: { servername: "a b" }'))).toEqual(['routes[0].tls.servername: must be a host name']);
  });
});
