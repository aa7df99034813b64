/** SPEC §12: what a refusal becomes for a gRPC client (src/errors.ts). */
import { describe, expect, it } from 'vitest';
import { encodeGrpcMessage, ERRORS, grpcStatusOf, type ErrorCode } from '../../src/errors.js';

describe('grpcStatusOf', () => {
  it("follows SPEC §12's table for every error a data-port request can get", () => {
    const expected: Partial<Record<ErrorCode, number>> = {
      unauthenticated: 16,
      forbidden: 7,
      tenant_suspended: 7,
      cross_tenant: 7,
      unknown_tenant: 7,
      no_route: 12,
      rate_limited: 8,
      quota_exceeded: 8,
      concurrency_limited: 8,
      upstream_unavailable: 14,
      store_unavailable: 14,
      upstream_overloaded: 14,
      shutting_down: 14,
      upstream_timeout: 4,
      bad_request: 3,
      tenant_required: 3,
      payload_too_large: 3,
      headers_too_large: 3,
    };
    for (const [code, status] of Object.entries(expected)) expect([code, grpcStatusOf(code as ErrorCode)]).toEqual([code, status]);
  });

  it("maps the statuses SPEC §12 leaves out by gRPC's own HTTP mapping, and every code to some status", () => {
    expect(grpcStatusOf('internal_error')).toBe(13);
    expect(grpcStatusOf('method_not_allowed')).toBe(12);
    expect(grpcStatusOf('request_timeout')).toBe(4);
    expect(grpcStatusOf('conflict')).toBe(2);
    for (const code of Object.keys(ERRORS) as ErrorCode[]) expect(Number.isInteger(grpcStatusOf(code))).toBe(true);
  });
});

describe('encodeGrpcMessage', () => {
  it('keeps printable ASCII, percent-encodes % and everything else as UTF-8 bytes', () => {
    expect(encodeGrpcMessage('Rate limit exceeded.')).toBe('Rate limit exceeded.');
    expect(encodeGrpcMessage('100% sure')).toBe('100%25 sure');
    expect(encodeGrpcMessage('café\n')).toBe('caf%C3%A9%0A');
  });
});
