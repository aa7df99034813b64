/**
 * The shipped alerts (helm/tenantgate/files/prometheus-rules.yaml) through
 * promtool: `check rules`, and `test rules` with series that make each alert
 * fire and series that must not (test/fixtures/prometheus/alerts.test.yaml).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ROOT } from '../../helpers/servers.js';
import { PROMTOOL } from '../../helpers/prometheus.js';

const RULES = join(ROOT, 'helm/tenantgate/files/prometheus-rules.yaml');
const CASES = join(ROOT, 'test/fixtures/prometheus/alerts.test.yaml');

interface Rule {
  alert: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface AlertCase {
  alertname: string;
  exp_alerts: unknown[];
}

const rules = (parse(readFileSync(RULES, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const cases = (parse(readFileSync(CASES, 'utf8')) as { tests: { alert_rule_test: AlertCase[] }[] }).tests.flatMap((t) => t.alert_rule_test);

describe('shipped alerts', () => {
  it('are the six issue #31 asks for, each with a severity, a summary and a description', () => {
    expect(rules.map((r) => r.alert).sort()).toEqual([
      'TenantgateConfigReloadFailed',
      'TenantgateCrossTenantAttempts',
      'TenantgateHighErrorRatio',
      'TenantgateLimitStoreDown',
      'TenantgateQuotaNearExhaustion',
      'TenantgateUsageEventsSpooling',
    ]);
    for (const r of rules) {
      expect(['critical', 'warning'], r.alert).toContain(r.labels?.severity);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
      expect(r.annotations?.description, r.alert).toBeTruthy();
    }
  });

  it('each has a promtool case where it fires and one where it does not', () => {
    for (const r of rules) {
      const mine = cases.filter((c) => c.alertname === r.alert);
      expect(mine.some((c) => c.exp_alerts.length > 0), `${r.alert} fires somewhere`).toBe(true);
      expect(mine.some((c) => c.exp_alerts.length === 0), `${r.alert} stays quiet somewhere`).toBe(true);
    }
  });

  describe.skipIf(PROMTOOL === null)('with promtool (Debian package prometheus; .ci/run installs it)', () => {
    it('promtool check rules accepts the file', () => {
      const run = spawnSync(PROMTOOL!, ['check', 'rules', RULES], { encoding: 'utf8' });
      expect(run.status, run.stdout + run.stderr).toBe(0);
      expect(run.stdout).toContain(`SUCCESS: ${rules.length} rules found`);
    });

    it('promtool test rules: every case passes', () => {
      const run = spawnSync(PROMTOOL!, ['test', 'rules', CASES], { encoding: 'utf8', cwd: ROOT });
      expect(run.status, run.stdout + run.stderr).toBe(0);
      expect(run.stdout).toContain('SUCCESS');
    });
  });
});
