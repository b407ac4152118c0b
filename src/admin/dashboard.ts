/**
 * GET /dashboard: a live page on the admin port. Self-contained: the page and
 * Chart.js (served from the installed chart.js package at /dashboard/chart.js,
 * no CDN) poll GET /dashboard/data once a second. Shows per class: queued, in
 * flight, ok and rejected per second, queue-wait and total p50/p99; per
 * upstream: in flight against its cap and each target's health.
 * A token, when the admin endpoint needs one, is read from the page's
 * fragment (`/dashboard#token=...`): fragments are never sent to a server or logged.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { SchedulerStatus } from '../schedule/scheduler.js';
import type { TargetHealth } from '../forward/pool.js';
import type { LiveClassFigures } from '../telemetry/live.js';

export interface DashboardData {
  /** Milliseconds since the epoch. */
  at: number;
  classes: (SchedulerStatus['classes'][number] & LiveClassFigures)[];
  upstreams: (SchedulerStatus['upstreams'][number] & { targets: TargetHealth[] })[];
}

let chartJs: Promise<string> | undefined;

/** The UMD build of Chart.js (not in the package's exports map; it sits beside the CommonJS entry). */
export function chartJsSource(): Promise<string> {
  chartJs ??= (async () => {
    const require = createRequire(import.meta.url);
    return readFile(join(dirname(require.resolve('chart.js')), 'chart.umd.min.js'), 'utf8');
  })();
  return chartJs;
}

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sluice dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:1.2em 2em;color:#222;background:#fff}
h1{font-size:1.4em;margin:0 0 .2em} h2{font-size:1.1em;margin:1.2em 0 .4em}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:right} th:first-child,td:first-child{text-align:left}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:1.2em}
.chart{position:relative;height:220px}
.bar{display:inline-block;width:160px;height:.9em;background:#eee;vertical-align:middle;margin-right:.5em}
.bar>span{display:block;height:100%;background:#2980b9}
.ok{color:#1e8449}.bad{color:#c0392b}#state{color:#777;font-size:.9em}
</style>
<script src="/dashboard/chart.js"></script></head>
<body>
<h1>sluice</h1><div id="state">connecting…</div>
<h2>Classes</h2>
<table id="classes"><thead><tr><th>class</th><th>priority</th><th>queued</th><th>in flight</th><th>ok/s</th><th>rejected/s</th>
<th>queue p50 ms</th><th>queue p99 ms</th><th>total p50 ms</th><th>total p99 ms</th></tr></thead><tbody></tbody></table>
<div class="charts">
<div><h2>ok per second</h2><div class="chart"><canvas id="c-ok"></canvas></div></div>
<div><h2>rejected per second</h2><div class="chart"><canvas id="c-rej"></canvas></div></div>
<div><h2>total latency p99 (ms)</h2><div class="chart"><canvas id="c-p99"></canvas></div></div>
<div><h2>queued</h2><div class="chart"><canvas id="c-queued"></canvas></div></div>
</div>
<h2>Upstreams</h2>
<table id="upstreams"><thead><tr><th>upstream</th><th>in flight / cap</th><th>queued</th><th>targets</th></tr></thead><tbody></tbody></table>
<script>
const token = new URLSearchParams(location.hash.slice(1)).get('token');
const headers = token ? { authorization: 'Bearer ' + token } : {};
const palette = ['#c0392b', '#2980b9', '#27ae60', '#8e44ad', '#d35400', '#16a085', '#7f8c8d'];
const KEEP = 120;
const charts = {};
function chart(id, field) {
  const c = new Chart(document.getElementById(id), { type: 'line', data: { labels: [], datasets: [] },
    options: { animation: false, maintainAspectRatio: false, parsing: false, normalized: true,
      scales: { x: { type: 'linear', title: { display: true, text: 'seconds since the page opened' } }, y: { beginAtZero: true } },
      elements: { point: { radius: 0 } }, plugins: { legend: { position: 'bottom' } } } });
  charts[id] = { c, field };
}
chart('c-ok', 'okPerSec'); chart('c-rej', 'rejectedPerSec'); chart('c-p99', 'totalP99'); chart('c-queued', 'queued');
const t0 = Date.now();
function cell(v) { return v === null || v === undefined ? '–' : String(v); }
function render(d) {
  const tb = document.querySelector('#classes tbody');
  tb.replaceChildren(...d.classes.map((k) => {
    const tr = document.createElement('tr'); tr.dataset.class = k.name;
    for (const [f, v] of [['name', k.name], ['priority', k.priority], ['queued', k.queued], ['inFlight', k.inFlight], ['okPerSec', k.okPerSec],
      ['rejectedPerSec', k.rejectedPerSec], ['queueP50', k.queueP50], ['queueP99', k.queueP99], ['totalP50', k.totalP50], ['totalP99', k.totalP99]]) {
      const td = document.createElement('td'); td.dataset.field = f; td.textContent = cell(v); tr.appendChild(td);
    }
    return tr;
  }));
  const ub = document.querySelector('#upstreams tbody');
  ub.replaceChildren(...d.upstreams.map((u) => {
    const tr = document.createElement('tr'); tr.dataset.upstream = u.name;
    const cap = u.maxConcurrent;
    const pct = cap ? Math.min(100, (100 * u.inFlight) / cap) : 0;
    const targets = u.targets.map((t) => '<span class="' + (t.ejected ? 'bad' : t.consecutiveFailures > 0 ? 'bad' : 'ok') + '">' +
      t.url.replace(/[<&>]/g, '') + (t.ejected ? ' ejected' : t.consecutiveFailures > 0 ? ' failing' : ' ok') + '</span>').join('<br>');
    tr.innerHTML = '<td></td><td data-field="inFlight"><span class="bar"><span style="width:' + pct + '%"></span></span>' + u.inFlight + ' / ' + (cap ?? '∞') +
      '</td><td data-field="queued">' + u.queued + '</td><td data-field="targets">' + targets + '</td>';
    tr.firstChild.textContent = u.name;
    return tr;
  }));
  const x = (d.at - t0) / 1000;
  for (const { c, field } of Object.values(charts)) {
    d.classes.forEach((k, i) => {
      let ds = c.data.datasets.find((s) => s.label === k.name);
      if (!ds) { ds = { label: k.name, data: [], spanGaps: true, borderColor: palette[i % palette.length], backgroundColor: palette[i % palette.length], borderWidth: 2 }; c.data.datasets.push(ds); }
      ds.data.push({ x, y: k[field] ?? null });
      if (ds.data.length > KEEP) ds.data.shift();
    });
    c.update('none');
  }
}
async function poll() {
  try {
    const r = await fetch('/dashboard/data', { headers, cache: 'no-store' });
    if (!r.ok) throw new Error('HTTP ' + r.status + (r.status === 401 ? ': open /dashboard#token=YOUR_ADMIN_TOKEN' : ''));
    const d = await r.json();
    render(d);
    document.getElementById('state').textContent = 'live · updated ' + new Date(d.at).toLocaleTimeString();
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  } catch (e) {
    document.getElementById('state').textContent = 'not connected: ' + e.message;
  }
  setTimeout(poll, 1000);
}
poll();
</script></body></html>
`;
