/** A self-contained HTML report: per-class latency over time, drawn with Chart.js (inlined). */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { percentile, type LoadRun } from './load.js';
import type { PhaseSummary } from './table.js';
import { renderComparison } from './table.js';

interface Meta {
  capacity: number;
  offered: number;
  slots: number;
  serviceMs: number;
}

function series(run: LoadRun): Record<string, { t: number; p50: number; p99: number; ok: number; rejected: number }[]> {
  const out: Record<string, { t: number; p50: number; p99: number; ok: number; rejected: number }[]> = {};
  for (const st of run.stats.values()) {
    const buckets = new Map<number, number[]>();
    const rejected = new Map<number, number>();
    for (const s of st.samples) {
      const b = Math.floor(s.at / 500);
      if (s.status === 200) {
        let arr = buckets.get(b);
        if (!arr) buckets.set(b, (arr = []));
        arr.push(s.ms);
      } else rejected.set(b, (rejected.get(b) ?? 0) + 1);
    }
    const keys = [...new Set([...buckets.keys(), ...rejected.keys()])].sort((a, b) => a - b);
    out[st.name] = keys.map((k) => {
      const l = (buckets.get(k) ?? []).sort((a, b) => a - b);
      return { t: k / 2, p50: percentile(l, 50), p99: percentile(l, 99), ok: l.length * 2, rejected: (rejected.get(k) ?? 0) * 2 };
    });
  }
  return out;
}

function escape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export async function renderHtml(phases: { summary: PhaseSummary; run: LoadRun }[], meta: Meta): Promise<string> {
  const require = createRequire(import.meta.url);
  // The UMD build is not in the package's exports map; it sits beside the CommonJS entry.
  const chartJs = await readFile(join(dirname(require.resolve('chart.js')), 'chart.umd.min.js'), 'utf8');
  const data = phases.map((p) => ({ title: p.summary.title, series: series(p.run) }));
  const table = renderComparison(phases.map((p) => p.summary));
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>sluice demo report</title>
<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}pre{background:#f6f6f6;padding:1em;overflow:auto}.row{display:flex;gap:2em}.row>div{flex:1}</style>
<script>${chartJs.replace(/<\/script/g, '<\\/script')}</script></head>
<body>
<h1>sluice demo</h1>
<p>Backend: ${meta.slots} slots × ${meta.serviceMs} ms = ${meta.capacity} req/s. Offered load ${meta.offered} req/s (${(meta.offered / meta.capacity).toFixed(1)}× capacity).
Left: FIFO (one class, everyone in one line). Right: sluice with priority classes and a premium reserve.</p>
<pre>${escape(table)}</pre>
<h2>p99 latency of successful requests (ms), per 0.5 s</h2><div class="row" id="p99"></div>
<h2>Successful requests per second</h2><div class="row" id="ok"></div>
<script>
const data = ${JSON.stringify(data)};
const colors = { premium: '#c0392b', free: '#2980b9' };
for (const [id, key, log] of [['p99', 'p99', true], ['ok', 'ok', false]]) {
  for (const phase of data) {
    const div = document.createElement('div');
    const h = document.createElement('h3'); h.textContent = phase.title; div.appendChild(h);
    const c = document.createElement('canvas'); div.appendChild(c);
    document.getElementById(id).appendChild(div);
    new Chart(c, { type: 'line', data: { datasets: Object.entries(phase.series).map(([name, pts]) => ({
      label: name, borderColor: colors[name] || '#555', pointRadius: 0,
      data: pts.filter(p => Number.isFinite(p[key])).map(p => ({ x: p.t, y: p[key] })) })) },
      options: { animation: false, parsing: false, scales: { x: { type: 'linear', title: { display: true, text: 's' } },
        y: { type: log ? 'logarithmic' : 'linear' } } } });
  }
}
</script></body></html>
`;
}
