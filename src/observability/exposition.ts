/**
 * The two formats /metrics serves: Prometheus text 0.0.4, or OpenMetrics 1.0
 * when the scrape's `Accept` prefers it (Prometheus itself asks for it first).
 *
 * prom-client's Registry prints OpenMetrics when its content type says so, but
 * then renames every counter it holds for good (`x_total` → `x`), which would
 * break the text format of the next scrape. So the OpenMetrics text is printed
 * by a registry of its own, made per scrape, holding views of the metrics: each
 * reads the metric's own `get()` and carries the OpenMetrics family name.
 */
import { Registry, type Metric, type OpenMetricsContentType } from 'prom-client';

/** What every registered metric offers (prom-client's own and ./series-metrics.ts'): its public `get()`. */
interface Exposable {
  readonly name: string;
  readonly help: string;
  readonly type: string;
  readonly aggregator: string;
  get(): Promise<object>;
}

export const TEXT_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;
export const OPENMETRICS_CONTENT_TYPE = Registry.OPENMETRICS_CONTENT_TYPE;

/** `q` of one media range (1 when absent, 0 when not a number in [0, 1]). */
function quality(params: string[]): number {
  for (const p of params) {
    const [k, v] = p.split('=');
    if (k?.trim().toLowerCase() === 'q') {
      const q = Number(v?.trim());
      return Number.isFinite(q) && q >= 0 && q <= 1 ? q : 0;
    }
  }
  return 1;
}

/**
 * True when `accept` ranks application/openmetrics-text at least as high as
 * the text format (text/plain, or a wildcard standing for it). Anything
 * unparsable counts for nothing, so a malformed header gets the text format.
 */
export function prefersOpenMetrics(accept: string | undefined): boolean {
  if (accept === undefined || accept.length > 4096) return false;
  let om = 0;
  let text = 0;
  for (const range of accept.split(',')) {
    const [type, ...params] = range.split(';');
    const media = type!.trim().toLowerCase();
    const q = quality(params);
    if (media === 'application/openmetrics-text') om = Math.max(om, q);
    else if (media === 'text/plain' || media === 'text/*' || media === '*/*') text = Math.max(text, q);
  }
  return om > 0 && om >= text;
}

/** The OpenMetrics family name: a counter's samples get `_total` appended by prom-client, so the family has none. */
function familyName(metric: Exposable): string {
  return metric.type === 'counter' ? metric.name.replace(/_total$/, '') : metric.name;
}

function openMetricsView(metric: Exposable): Metric {
  const name = familyName(metric);
  return {
    name,
    help: metric.help,
    type: metric.type,
    aggregator: metric.aggregator,
    get: async () => ({ ...(await metric.get()), name }),
    reset: () => {},
  } as unknown as Metric;
}

/** The registry's metrics in OpenMetrics 1.0 text, ending with `# EOF`. */
export function openMetrics(registry: Registry): Promise<string> {
  const view = new Registry<OpenMetricsContentType>();
  view.setContentType(OPENMETRICS_CONTENT_TYPE);
  for (const metric of registry.getMetricsAsArray() as unknown as Exposable[]) view.registerMetric(openMetricsView(metric));
  return view.metrics();
}
