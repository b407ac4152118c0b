/**
 * docs/grafana-dashboard.json references only metric and label names that a
 * running sluice exports: the names are read from its GET /metrics after
 * traffic (forwarded and rejected), never from a list kept in this test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBackend } from '../helpers/backend.js';
import { ROOT, startSluice } from '../helpers/sluice.js';
import { getJson, waitFor } from '../helpers/net.js';

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
}

const PROMQL_WORDS = new Set(['sum', 'max', 'min', 'avg', 'count', 'rate', 'irate', 'increase', 'histogram_quantile', 'by', 'without', 'and', 'or', 'unless', 'on', 'ignoring']);

/** Metric names in a PromQL expression: identifiers outside `by (...)`, `{...}` and `[...]` that are no function or keyword. */
function metricsOf(expr: string): string[] {
  const bare = expr.replace(/\b(by|without)\s*\([^)]*\)/g, ' ').replace(/\{[^}]*\}/g, ' ').replace(/\[[^\]]*\]/g, ' ').replace(/"[^"]*"/g, ' ');
  return (bare.match(/[A-Za-z_:][A-Za-z0-9_:]*/g) ?? []).filter((w) => !PROMQL_WORDS.has(w));
}

/** Label names in a PromQL expression: in `by (...)` and on the left of matchers. */
function labelsOf(expr: string): string[] {
  const out: string[] = [];
  for (const m of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) out.push(...m[1]!.split(',').map((s) => s.trim()).filter(Boolean));
  for (const m of expr.matchAll(/\{([^}]*)\}/g)) for (const p of m[1]!.matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)/g)) out.push(p[1]!);
  return out.filter((l) => l !== 'le' && l !== '__name__');
}

test('the Grafana dashboard uses only metric and label names sluice exports', async () => {
  const backend = await startBackend({ delayMs: 20 });
  const s = await startSluice(`upstreams:
  - name: app
    targets: [${backend.url}]
    maxConcurrent: 2
routes:
  - match: { pathPrefix: / }
    upstream: app
classes:
  - name: premium
    priority: 0
    match: { headers: { x-tier: premium } }
  - name: free
    priority: 1
    rateLimit: { rate: 2, per: 1s, burst: 2 }
defaultClass: free
`);
  try {
    const statuses = await Promise.all(
      Array.from({ length: 12 }, (_, i) => fetch(`${s.url}/x`, { headers: i % 3 === 0 ? { 'x-tier': 'premium' } : {} }).then(async (r) => (await r.text(), r.status))),
    );
    assert.ok(statuses.includes(200) && statuses.includes(429), statuses.join(','));
    await waitFor(async () => {
      const st = await getJson<{ inFlight: number; queued: number }>(`${s.admin}/status`);
      return st.inFlight === 0 && st.queued === 0;
    }, 5000, 'in flight and queued back to zero');
    const text = await (await fetch(`${s.admin}/metrics`)).text();
    const exported = new Set<string>();
    const labels = new Set<string>();
    for (const line of text.split('\n')) {
      const type = /^# TYPE (\S+) (\S+)/.exec(line);
      if (type) {
        exported.add(type[1]!);
        if (type[2] === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) exported.add(type[1]! + suffix);
        continue;
      }
      const sample = /^([A-Za-z_:][A-Za-z0-9_:]*)(\{([^}]*)\})?\s/.exec(line);
      if (!sample) continue;
      exported.add(sample[1]!);
      for (const l of (sample[3] ?? '').matchAll(/([A-Za-z_][A-Za-z0-9_]*)="/g)) labels.add(l[1]!);
    }
    assert.ok(exported.size >= 5, `metrics scraped: ${[...exported].join(', ')}`);

    const dash = JSON.parse(await readFile(join(ROOT, 'docs', 'grafana-dashboard.json'), 'utf8')) as {
      panels: Panel[];
      templating: { list: { definition: string }[] };
    };
    const used = new Set<string>();
    const usedLabels = new Set<string>();
    for (const p of dash.panels) {
      for (const t of p.targets ?? []) {
        for (const m of metricsOf(t.expr)) used.add(m);
        for (const l of labelsOf(t.expr)) usedLabels.add(l);
      }
    }
    for (const v of dash.templating.list) {
      const m = /^label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)$/.exec(v.definition);
      assert.ok(m, v.definition);
      used.add(m[1]!);
      usedLabels.add(m[2]!);
    }
    assert.ok(used.size >= 7, `the dashboard's panels cover the live page: ${[...used].join(', ')}`);
    const unknown = [...used].filter((m) => !exported.has(m));
    assert.deepEqual(unknown, [], `metrics the dashboard uses that sluice does not export (exported: ${[...exported].sort().join(', ')})`);
    const unknownLabels = [...usedLabels].filter((l) => !labels.has(l));
    assert.deepEqual(unknownLabels, [], `labels not exported (exported: ${[...labels].join(', ')})`);
    // The live page's panels: queued, in flight, ok and rejected rates, queue-wait and total percentiles, upstream in flight against the cap.
    const titles = dash.panels.map((p) => p.title.toLowerCase()).join(' | ');
    for (const w of ['queued', 'in flight', 'ok per second', 'rejected', 'queue wait', 'total latency', 'cap']) assert.ok(titles.includes(w), `panel for ${w}: ${titles}`);
  } finally {
    await s.stop();
    await backend.close();
  }
});
