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

/**
 * The report: FIFO and sluice on the same charts, so the one comparison that
 * matters is read off one axis: premium's p99 latency with and without
 * sluice (and free's, dashed), then successful requests per second the same
 * way. Each chart is full width (readable at 1280 px); both phases are
 * plotted against seconds since their own start.
 */
export async function renderHtml(phases: { summary: PhaseSummary; run: LoadRun }[], meta: Meta): Promise<string> {
  const require = createRequire(import.meta.url);
  // The UMD build is not in the package's exports map; it sits beside the CommonJS entry.
  const chartJs = await readFile(join(dirname(require.resolve('chart.js')), 'chart.umd.min.js'), 'utf8');
  const data = phases.map((p, i) => ({ title: p.summary.title, short: i === 0 ? 'FIFO' : 'sluice', series: series(p.run) }));
  const table = renderComparison(phases.map((p) => p.summary));
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sluice demo report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;max-width:1200px;margin:1.5em auto;padding:0 1.5em;color:#222}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:.9em}
.chart{position:relative;width:100%;height:380px;margin-bottom:1em}
.key{color:#555;font-size:.95em}
</style>
<script>${chartJs.replace(/<\/script/g, '<\\/script')}</script></head>
<body>
<h1>sluice demo</h1>
<p>Backend: ${meta.slots} slots × ${meta.serviceMs} ms = ${meta.capacity} req/s. Offered load ${meta.offered} req/s (${(meta.offered / meta.capacity).toFixed(1)}× capacity).
Two runs of the same load: <b>FIFO</b> (one class, everyone in one line) and <b>sluice</b> (priority classes and a premium reserve, policies/demo.yaml).</p>
<pre>${escape(table)}</pre>
<h2>p99 latency of successful requests (ms), per 0.5 s</h2>
<p class="key">One axis for both runs. Solid: sluice; dashed: FIFO. Red: premium; blue: free.</p>
<div class="chart"><canvas id="p99"></canvas></div>
<h2>Successful requests per second</h2>
<p class="key">One axis for both runs. Solid: sluice; dashed: FIFO.</p>
<div class="chart"><canvas id="ok"></canvas></div>
<script>
const data = ${JSON.stringify(data)};
const colors = { premium: '#c0392b', free: '#2980b9' };
window.charts = {};
for (const [id, key, unit] of [['p99', 'p99', 'ms'], ['ok', 'ok', 'req/s']]) {
  const datasets = [];
  for (const phase of data) {
    for (const [name, pts] of Object.entries(phase.series)) {
      const premium = name === 'premium';
      datasets.push({ label: phase.short + ' ' + name, borderColor: colors[name] || '#555', backgroundColor: colors[name] || '#555',
        borderDash: phase.short === 'FIFO' ? [6, 4] : [], borderWidth: premium ? 3 : 1.5, pointRadius: 0,
        data: pts.filter((p) => Number.isFinite(p[key])).map((p) => ({ x: p.t, y: p[key] })) });
    }
  }
  window.charts[id] = new Chart(document.getElementById(id), { type: 'line', data: { datasets },
    options: { animation: false, parsing: false, maintainAspectRatio: false,
      plugins: { legend: { position: 'right' } },
      scales: { x: { type: 'linear', title: { display: true, text: 'seconds since the run started' } },
        y: { type: 'linear', beginAtZero: true, title: { display: true, text: unit } } } } });
}
</script></body></html>
`;
}
