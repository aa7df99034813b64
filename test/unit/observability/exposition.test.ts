/**
 * Which format a scrape gets from its Accept header: OpenMetrics only when it
 * ranks application/openmetrics-text at least as high as the text format;
 * anything malformed gets the text format.
 */
import { describe, expect, it } from 'vitest';
import { prefersOpenMetrics } from '../../../src/observability/exposition.js';

describe('prefersOpenMetrics', () => {
  it.each([
    // What Prometheus 2.x sends.
    ['application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1', true],
    ['application/openmetrics-text; version=1.0.0; charset=utf-8', true],
    ['Application/OpenMetrics-Text', true],
    ['text/plain;q=0.5, application/openmetrics-text;q=0.9', true],
    ['application/openmetrics-text;q=0.5, text/plain', false],
    ['application/openmetrics-text;q=0', false],
    ['application/openmetrics-text;q=abc', false],
    ['application/openmetrics-text;q=2', false],
    ['text/plain;version=0.0.4', false],
    ['*/*', false],
    ['', false],
    [';;;,,,==', false],
    [`application/openmetrics-text,${'x'.repeat(5000)}`, false],
  ])('%s → %s', (accept, expected) => {
    expect(prefersOpenMetrics(accept)).toBe(expected);
  });

  it('no Accept header → text', () => {
    expect(prefersOpenMetrics(undefined)).toBe(false);
  });
});
