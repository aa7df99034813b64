/**
 * The `tracing` section of the config (src/config/schema.ts, SPEC §13): its
 * defaults, the ways it stays off, and the values it refuses.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { configProblems } from '../../helpers/config-problems.js';

const base = `routes: [{ name: r, match: { pathPrefix: / }, upstream: "http://127.0.0.1:1", auth: [none] }]\n`;
const tracingOf = (yaml: string) => parseConfig(base + yaml, 'test.yaml', {}).source.tracing;

describe('tracing config', () => {
  it('is off (null) when absent', () => {
    expect(tracingOf('')).toBeNull();
  });

  it('fills the defaults: every new trace sampled, the client\'s traceparent not trusted', () => {
    expect(tracingOf('tracing: { otlp: { url: "http://otel:4318/v1/traces" } }')).toEqual({
      otlp: { url: 'http://otel:4318/v1/traces', headers: {}, timeoutMs: 10_000 },
      sampleRatio: 1,
      trustIncoming: false,
      serviceName: 'tenantgate',
      maxQueueSize: 2048,
      maxExportBatchSize: 512,
      exportIntervalMs: 1000,
      flushTimeoutMs: 2000,
    });
  });

  it('stays off with no otlp, or an empty ${VAR:-} url', () => {
    expect(tracingOf('tracing: { sampleRatio: 0.5 }')!.otlp).toBeNull();
    expect(parseConfig(`${base}tracing: { otlp: { url: \${OTLP_URL:-} } }`, 'test.yaml', {}).source.tracing!.otlp!.url).toBeNull();
  });

  it.each([
    ['otlp: { url: "ftp://otel/v1/traces" }', 'tracing.otlp.url'],
    ['otlp: { url: "not a url" }', 'tracing.otlp.url'],
    ['sampleRatio: 1.5', 'tracing.sampleRatio'],
    ['sampleRatio: -0.1', 'tracing.sampleRatio'],
    ['otlp: { url: "http://otel/v1/traces", headers: { "bad header": x } }', 'tracing.otlp.headers'],
    ['maxQueueSize: 10, maxExportBatchSize: 20', 'tracing.maxExportBatchSize'],
    ['trustIncoming: "yes"', 'tracing.trustIncoming'],
    ['sampleRate: 0.1', 'tracing'],
  ])('refuses %s', (fields, path) => {
    const problems = configProblems(`${base}tracing: { ${fields} }`);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.every((p) => p.startsWith(path))).toBe(true);
  });
});
