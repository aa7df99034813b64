/**
 * A counter and a histogram for the per-request hot path, registered in a
 * prom-client Registry and exposed exactly as prom-client's own (same text,
 * same series order, `le` first). Why not prom-client's: even through a
 * cached label child, every `inc()`/`observe()` there re-validates the label
 * object, re-hashes it (sort + join) and indexes the buckets by a fractional
 * number turned into a property name, on every request. A series below is
 * resolved once per label set and is then a plain object: a counter bump is
 * one addition, an observation a short bucket scan and two additions.
 */
import type { Registry } from 'prom-client';

type Labels = Record<string, string>;

interface ValuePair {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

interface MetricData {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  values: ValuePair[];
  aggregator: 'sum';
}

/** What prom-client's Registry needs of a metric. */
abstract class SeriesMetric<S> {
  readonly aggregator = 'sum' as const;
  protected readonly series = new Map<string, { labels: Labels; s: S }>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
    registry: Registry,
  ) {
    registry.registerMetric(this as never);
  }

  /**
   * The series of these label values (in `labelNames` order), created on
   * first use; call it once per label set, not per request. As with
   * prom-client's children, a series is exposed once it has counted something.
   */
  labels(...values: string[]): S {
    const key = values.join('\0');
    let entry = this.series.get(key);
    if (entry === undefined) {
      const labels: Labels = {};
      this.labelNames.forEach((n, i) => (labels[n] = values[i] ?? ''));
      entry = { labels, s: this.create() };
      this.series.set(key, entry);
    }
    return entry.s;
  }

  protected abstract create(): S;
  abstract get(): Promise<MetricData>;

  reset(): void {
    this.series.clear();
  }
}

export interface CounterSeries {
  value: number;
}

export class SeriesCounter extends SeriesMetric<CounterSeries> {
  readonly type = 'counter' as const;

  protected create(): CounterSeries {
    return { value: 0 };
  }

  async get(): Promise<MetricData> {
    const values: ValuePair[] = [];
    for (const { labels, s } of this.series.values()) if (s.value !== 0) values.push({ labels: { ...labels }, value: s.value });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}

export class HistogramSeries {
  /** counts[i]: observations in (bounds[i-1], bounds[i]]; the last slot is above every bound (+Inf). */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: Float64Array) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Returns the bucket's index, which `observeIn` takes for the same value in a histogram of the same buckets. */
  observe(value: number): number {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.observeIn(i, value);
    return i;
  }

  /** `value`, whose bucket index is already known (no second scan of the bounds). */
  observeIn(bucket: number, value: number): void {
    this.counts[bucket]!++;
    this.sum += value;
    this.count++;
  }
}

export class SeriesHistogram extends SeriesMetric<HistogramSeries> {
  readonly type = 'histogram' as const;
  private readonly bounds: Float64Array;

  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[], registry: Registry) {
    super(name, help, labelNames, registry);
    this.bounds = Float64Array.from([...buckets].sort((a, b) => a - b));
  }

  protected create(): HistogramSeries {
    return new HistogramSeries(this.bounds);
  }

  async get(): Promise<MetricData> {
    const values: ValuePair[] = [];
    for (const { labels, s } of this.series.values()) {
      if (s.count === 0) continue;
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += s.counts[i]!;
        values.push({ labels: { le, ...labels }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', ...labels }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { ...labels }, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...labels }, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}
