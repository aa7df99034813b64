/**
 * incomingTraceId (src/tracing/hooks.ts): what the access line and usage event
 * carry as `traceId` when tracing is off — the trace id of a well-formed W3C
 * traceparent, or null for anything else a client may send.
 */
import { describe, expect, it } from 'vitest';
import { incomingTraceId } from '../../../src/tracing/hooks.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('incomingTraceId', () => {
  it('reads the trace id of a version-00 traceparent, sampled or not', () => {
    expect(incomingTraceId(`00-${TRACE}-${SPAN}-01`)).toBe(TRACE);
    expect(incomingTraceId(`00-${TRACE}-${SPAN}-00`)).toBe(TRACE);
  });

  it('accepts a later version with more fields after a dash (W3C forward compatibility)', () => {
    expect(incomingTraceId(`01-${TRACE}-${SPAN}-01`)).toBe(TRACE);
    expect(incomingTraceId(`01-${TRACE}-${SPAN}-01-extra`)).toBe(TRACE);
  });

  it.each([
    ['absent', undefined],
    ['repeated (Node joins it into a list)', [`00-${TRACE}-${SPAN}-01`, `00-${TRACE}-${SPAN}-01`]],
    ['empty', ''],
    ['upper-case hex', `00-${TRACE.toUpperCase()}-${SPAN}-01`],
    ['all-zero trace id', `00-${'0'.repeat(32)}-${SPAN}-01`],
    ['all-zero parent id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['version ff', `ff-${TRACE}-${SPAN}-01`],
    ['version 00 with a trailing field', `00-${TRACE}-${SPAN}-01-extra`],
    ['a later version followed by other than a dash', `01-${TRACE}-${SPAN}-01x`],
    ['short trace id', `00-${TRACE.slice(1)}-${SPAN}-01`],
    ['wrong separators', `00_${TRACE}_${SPAN}_01`],
    ['non-hex characters', `00-${TRACE.slice(0, 31)}g-${SPAN}-01`],
    ['non-ASCII characters', `00-${TRACE.slice(0, 31)}é-${SPAN}-01`],
    ['a header-injection attempt', `00-${TRACE}-${SPAN}-01\r\nx: y`],
  ])('null for a traceparent that is %s', (_, value) => {
    expect(incomingTraceId(value as string | string[] | undefined)).toBeNull();
  });
});
