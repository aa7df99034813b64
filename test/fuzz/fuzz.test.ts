/**
 * The fuzz suite (issue #33): seeded, bounded request fuzzing of a real proxy
 * process in front of a real upstream, on loopback. The short run is part of
 * `npm test` (fixed seed: reproducible in CI); `npm run fuzz [-- --seed N
 * --iterations N]` runs the same code longer, from any seed, and prints
 * every violation with the request that caused it (credentials as
 * placeholders). Generation: ./inputs.ts; invariants: ./invariants.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Violation, ViolationKind } from './invariants.js';
import { runFuzz, type FuzzReport } from './run.js';

const SEED = Number(process.env.FUZZ_SEED ?? 33);
const ITERATIONS = Number(process.env.FUZZ_ITERATIONS ?? 9000);

let report: FuzzReport;
beforeAll(async () => {
  report = await runFuzz({ seed: SEED, iterations: ITERATIONS });
}, Math.max(120_000, ITERATIONS * 30));

afterAll(() => {
  if (process.env.FUZZ_REPORT !== '1' || report === undefined) return;
  const counts: Record<string, number> = {};
  for (const v of report.violations) counts[v.kind] = (counts[v.kind] ?? 0) + 1;
  console.log(JSON.stringify({ seed: report.seed, sent: report.sent, statuses: report.statuses, violations: counts, tunnelsLeftAtUpstream: report.tunnelsLeft }));
  for (const kind of Object.keys(counts)) console.log(explain(report.violations.filter((v) => v.kind === kind), 8));
});

/** The first `max` violations, each with its seed, index and request (placeholders only), for the failure message. */
function explain(list: readonly Violation[], max = 5): string {
  return list
    .slice(0, max)
    .map((v) => `[${v.kind}] seed ${SEED} #${v.index}: ${v.detail}${v.index >= 0 ? `\n    ${JSON.stringify(report.inputs.get(v.index))}` : ''}`)
    .join('\n');
}

function expectNone(kind: ViolationKind, ...more: ViolationKind[]): void {
  const found = report.violations.filter((v) => v.kind === kind || more.includes(v.kind));
  expect(found.length, explain(found)).toBe(0);
}

describe(`fuzz: ${ITERATIONS} requests from seed ${SEED}`, () => {
  it('reaches every stage: forwarded, upgraded, and refused by the parser, route, auth, tenant and method checks', () => {
    expect(report.sent).toBe(ITERATIONS);
    for (const status of ['200', '101', '400', '401', '403', '404', '405']) expect(report.statuses[status], status).toBeGreaterThan(0);
  });

  it('every refusal is the SPEC §4 JSON with its status; never a 500, a hang, a silent close or a stack trace', () => {
    expectNone('response');
  });

  it('no client-supplied identity header (any case, duplicated, _-spelt), credential or Connection-nominated header reaches the upstream', () => {
    expectNone('leak');
  });

  it('every upstream request is one the proxy routed and authorized: its route, a valid credential with the permission, its tenant and method; nothing smuggled', () => {
    expectNone('routing');
  });

  it('no upstream would dispatch a forwarded path (";" or "%3B" parameters, case-folding) to a route other than the one that authorized it', () => {
    expectNone('dispatch');
  });

  it('nothing admitted stays held: a concurrency: 3 tenant admits 3 requests at once after the run', () => {
    expectNone('lease');
  });

  it('after the run the in-flight gauge is 0, the proxy still runs and logged no failure', () => {
    expectNone('inflight', 'logged');
  });
});
