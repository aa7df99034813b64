/**
 * One fuzz run: `iterations` generated requests from `seed`, a few at a time,
 * against ./harness.ts's world; every answer and every upstream request
 * checked (./invariants.ts); then what a run must leave behind: the
 * concurrency-limited tenant admits its full concurrency, the in-flight gauge
 * is back to 0, nothing was logged as failed, the proxy still runs.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { exchange, FuzzWorld, type ClientAnswer } from './harness.js';
import { generate, render, type FuzzRequest } from './inputs.js';
import { checkAnswer, checkForwarded, type Violation } from './invariants.js';
import { CONCURRENCY } from './world.js';

export interface FuzzOptions {
  seed: number;
  iterations: number;
  /** Requests in flight at once. */
  parallel?: number;
}

export interface FuzzReport {
  seed: number;
  sent: number;
  statuses: Record<string, number>;
  violations: Violation[];
  /** Index → the request as sent (placeholders, no secrets), for every request that broke an invariant. */
  inputs: Map<number, string>;
  /** Upstream ends of WebSocket tunnels still open once the proxy had nothing in flight (observed, not asserted: #33.7). */
  tunnelsLeft: number;
}

/** Polls `probe` until true or `ms` passed; returns its last answer (a bound, not a timing assertion). */
async function eventually(ms: number, probe: () => Promise<boolean>): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() > until) return false;
    await sleep(25);
  }
}

export async function runFuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const world = await FuzzWorld.start();
  const violations: Violation[] = [];
  const statuses: Record<string, number> = {};
  const answers = new Map<number, { q: FuzzRequest; a: ClientAnswer }>();
  let tunnelsLeft = 0;
  try {
    let next = 0;
    const worker = async () => {
      while (next < opts.iterations) {
        const q = generate(opts.seed, next++);
        const a = await exchange(world.proxy.port, render(q, world.secrets), q.method.toUpperCase() === 'HEAD');
        statuses[String(a.status)] = (statuses[String(a.status)] ?? 0) + 1;
        answers.set(q.index, { q, a });
      }
    };
    await Promise.all(Array.from({ length: opts.parallel ?? 4 }, worker));
    // Let tunnels and late upstream writes settle before the upstream's log is read.
    await eventually(5000, async () => (await inflight(world)) === 0);

    const seen = new Set<string>();
    for (const { q, a } of answers.values()) {
      const forwarded = world.byId.get(q.id) ?? [];
      seen.add(q.id);
      violations.push(...checkAnswer(q, a, forwarded));
      for (const r of forwarded) violations.push(...checkForwarded(q, r));
    }
    for (const [id, records] of world.byId) {
      if (seen.has(id)) continue;
      const index = Number(/^fz-\d+-(\d+)/.exec(id)?.[1] ?? -1);
      const what = id.endsWith('-smuggled') ? 'a request smuggled in a body reached the upstream' : `an upstream request no client request accounts for (X-Request-ID ${JSON.stringify(id.slice(0, 80))})`;
      violations.push({ kind: 'routing', index, detail: `${what}: ${records.map((r) => `${r.method} ${r.url}`).join(', ')}` });
    }
    await eventually(2000, async () => world.tunnels.size === 0);
    tunnelsLeft = world.tunnels.size;
    violations.push(...(await afterRun(world)));
  } finally {
    await world.close();
  }
  const inputs = new Map<number, string>();
  for (const v of violations) if (v.index >= 0) inputs.set(v.index, generate(opts.seed, v.index).text);
  return { seed: opts.seed, sent: answers.size, statuses, violations, inputs, tunnelsLeft };
}

async function inflight(world: FuzzWorld): Promise<number> {
  const text = await (await fetch(`${world.proxy.adminUrl}/metrics`)).text();
  return Number(/^tenantgate_inflight_requests (\d+)/m.exec(text)?.[1] ?? NaN);
}

/** What a run must leave behind. */
async function afterRun(world: FuzzWorld): Promise<Violation[]> {
  const out: Violation[] = [];
  const v = (kind: Violation['kind'], detail: string) => out.push({ kind, index: -1, detail });
  if (world.proxy.child.exitCode !== null) return [{ kind: 'response', index: -1, detail: `the proxy exited (${world.proxy.child.exitCode})` }];
  const gauge = await inflight(world);
  if (gauge !== 0) v('inflight', `tenantgate_inflight_requests is ${gauge} after the run, not 0`);

  // Every slot admission took was released: the limited tenant admits CONCURRENCY requests at once.
  const holds = Array.from({ length: CONCURRENCY }, (_, n) => exchange(world.proxy.port, world.holdRequest(n), false, 15_000));
  let early: ClientAnswer | undefined;
  void Promise.race(holds).then((a) => (early = a));
  await eventually(5000, async () => world.held.length === CONCURRENCY || early !== undefined);
  const admitted = world.held.length;
  world.releaseHeld();
  const answers = await Promise.all(holds);
  if (admitted !== CONCURRENCY) {
    const refused = answers.filter((a) => a.status !== 200).map((a) => a.status);
    v('lease', `a concurrency: ${CONCURRENCY} tenant admitted ${admitted} of ${CONCURRENCY} after the run (others: ${refused.join(', ')}): slots leaked`);
  }

  const failed = world.proxy.logs.filter((l) => {
    const line = l as { level?: number; msg?: string };
    return typeof line.level === 'number' && line.level >= 50 && line.msg !== undefined && !/^(GET|POST|HEAD|PUT|DELETE|PATCH|OPTIONS)? ?request/.test(line.msg);
  });
  for (const l of failed.slice(0, 5)) v('logged', `the proxy logged: ${JSON.stringify(l).slice(0, 300)}`);
  return out;
}
