/**
 * The hot-path counter and histogram must expose exactly what prom-client's
 * own would for the same observations: the same text (bucket lines, `le`
 * formatting and order, sums, counts, series order); the counter's JSON too.
 */
import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { SeriesCounter, SeriesHistogram } from '../../../src/observability/series-metrics.js';

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Includes values exactly on a bound (le is inclusive), below the first and above the last. */
const VALUES = [0, 0.0001, 0.0005, 0.00051, 0.001, 0.0033, 0.05, 0.7, 1, 2.5, 59.9, 60, 61, 1234.5];

describe('SeriesHistogram', () => {
  it('renders the same text and JSON as a prom-client Histogram', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const h = new SeriesHistogram('x_seconds', 'help "text"\\', ['route', 'status_class'], BUCKETS, ours);
    const p = new Histogram({ name: 'x_seconds', help: 'help "text"\\', labelNames: ['route', 'status_class'], buckets: BUCKETS, registers: [theirs] });
    // Series are listed in first-use order (prom-client: first observation); the first value goes to b.
    const b = h.labels('we"ird\\route\n', '5xx');
    const a = h.labels('api', '2xx');
    h.labels('never', '2xx'); // resolved but never observed: not exposed
    VALUES.forEach((v, i) => {
      if (i % 3 === 0) {
        b.observe(v);
        p.labels('we"ird\\route\n', '5xx').observe(v);
      } else {
        a.observe(v);
        p.labels('api', '2xx').observe(v);
      }
    });
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.metrics()).toMatch(/^x_seconds_bucket\{le="0.0005",route="api",status_class="2xx"\} 2$/m);
  });

  it('reset() forgets every series', async () => {
    const registry = new Registry();
    const h = new SeriesHistogram('y_seconds', 'y', ['route'], BUCKETS, registry);
    h.labels('a').observe(1);
    registry.resetMetrics();
    expect(await registry.metrics()).not.toContain('y_seconds_bucket');
  });
});

describe('SeriesCounter', () => {
  it('renders the same text and JSON as a prom-client Counter, in first-use order', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const c = new SeriesCounter('r_total', 'requests', ['route', 'tenant'], ours);
    const p = new Counter({ name: 'r_total', help: 'requests', labelNames: ['route', 'tenant'], registers: [theirs] });
    const order: [string, string][] = [['b', 't1'], ['a', ''], ['b', 't1'], ['c', 'other'], ['a', '']];
    for (const [route, tenant] of order) {
      c.labels(route, tenant).value++;
      p.labels(route, tenant).inc();
    }
    c.labels('unused', 'x');
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.getMetricsAsJSON()).toEqual(await theirs.getMetricsAsJSON());
  });
});
