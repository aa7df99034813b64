/** The gRPC forward stage's pure parts: grpc-timeout parsing and the call's deadline (SPEC §12). */
import { describe, expect, it } from 'vitest';
import { callDeadlineMs, grpcUpstreamRejection, parseGrpcTimeout } from '../../../src/stages/forward-grpc.js';

describe('parseGrpcTimeout', () => {
  it('reads every unit of the gRPC spec, in milliseconds', () => {
    expect(parseGrpcTimeout('2H')).toBe(7_200_000);
    expect(parseGrpcTimeout('3M')).toBe(180_000);
    expect(parseGrpcTimeout('5S')).toBe(5000);
    expect(parseGrpcTimeout('250m')).toBe(250);
    expect(parseGrpcTimeout('1500u')).toBe(1.5);
    expect(parseGrpcTimeout('2000000n')).toBe(2);
    expect(parseGrpcTimeout('99999999S')).toBe(99_999_999_000);
  });

  it('refuses what the spec does not allow: no unit, a sign, a fraction, more than 8 digits, spaces', () => {
    for (const bad of ['', '100', '-1S', '1.5S', '123456789S', ' 1S', '1s', '1 S', 'S']) expect(parseGrpcTimeout(bad)).toBeNull();
  });
});

describe('callDeadlineMs', () => {
  it("is the route's timeoutMs without a grpc-timeout", () => {
    expect(callDeadlineMs(undefined, 30_000)).toBe(30_000);
  });

  it('the smaller of the two wins', () => {
    expect(callDeadlineMs('100m', 30_000)).toBe(100);
    expect(callDeadlineMs('1H', 30_000)).toBe(30_000);
  });

  it('is null for a malformed grpc-timeout (answered INVALID_ARGUMENT)', () => {
    expect(callDeadlineMs('soon', 30_000)).toBeNull();
  });
});

describe('grpcUpstreamRejection', () => {
  const err = (code: string) => Object.assign(new Error('x'), { code });

  it('names a TLS failure by its code, as 502 upstream_unavailable', () => {
    expect(grpcUpstreamRejection(err('UNABLE_TO_VERIFY_LEAF_SIGNATURE'))).toMatchObject({ code: 'upstream_unavailable', reason: 'tls:UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    expect(grpcUpstreamRejection(err('ERR_TLS_CERT_ALTNAME_INVALID'))).toMatchObject({ code: 'upstream_unavailable', reason: 'tls:ERR_TLS_CERT_ALTNAME_INVALID' });
  });

  it('a refused connection and a reset stream are 502 as on HTTP', () => {
    expect(grpcUpstreamRejection(err('ECONNREFUSED'))).toMatchObject({ code: 'upstream_unavailable', reason: 'connect_refused' });
    expect(grpcUpstreamRejection(err('ERR_HTTP2_STREAM_ERROR'))).toMatchObject({ code: 'upstream_unavailable', reason: 'upstream_reset' });
  });
});
