/** Text tables for the demo: the live view and the final comparison. */
import { latencies, percentile, type LoadRun } from './load.js';

export interface ClassSummary {
  name: string;
  sent: number;
  ok: number;
  throughput: number;
  p50: number;
  p99: number;
  rejected: number;
  errors: number;
}

export interface PhaseSummary {
  title: string;
  classes: ClassSummary[];
}

function fmt(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n');
}

export function summarize(title: string, run: LoadRun, durationMs: number): PhaseSummary {
  return {
    title,
    classes: [...run.stats.values()].map((st) => {
      const ok = st.ok();
      const l = latencies(ok);
      return {
        name: st.name,
        sent: st.sent,
        ok: ok.length,
        throughput: ok.length / (durationMs / 1000),
        p50: percentile(l, 50),
        p99: percentile(l, 99),
        rejected: st.rejected(),
        errors: st.errors(),
      };
    }),
  };
}

export function renderLive(title: string, run: LoadRun, durationMs: number, queued: Record<string, number>): string {
  const elapsed = performance.now() - run.start;
  const from = Math.max(0, elapsed - 2000);
  const rows = [['class', 'req/s ok', 'p50 ms', 'p99 ms', 'queued', 'rejected', 'errors']];
  for (const st of run.stats.values()) {
    const ok = st.ok(from, elapsed);
    const l = latencies(ok);
    // FIFO has one class for everyone: its queue is shown on every row.
    const q = queued[st.name] ?? Object.values(queued).reduce((a, b) => a + b, 0);
    rows.push([st.name, fmt(ok.length / ((elapsed - from) / 1000 || 1)), fmt(percentile(l, 50), 1), fmt(percentile(l, 99), 1), String(q), String(st.rejected()), String(st.errors())]);
  }
  return `${title}: ${fmt(Math.min(elapsed, durationMs) / 1000, 1)}s / ${durationMs / 1000}s (last 2 s window)\n\n${table(rows)}`;
}

export function renderComparison(phases: PhaseSummary[]): string {
  const rows = [['policy', 'class', 'sent', 'ok req/s', 'p50 ms', 'p99 ms', 'rejected (503)', 'errors']];
  for (const p of phases) {
    for (const c of p.classes) {
      rows.push([p.title, c.name, String(c.sent), fmt(c.throughput), fmt(c.p50, 1), fmt(c.p99, 1), String(c.rejected), String(c.errors)]);
    }
  }
  return table(rows);
}
