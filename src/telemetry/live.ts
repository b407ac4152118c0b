/**
 * Recent per-class figures for the live dashboard (GET /dashboard/data): over
 * the last `windowMs` (default 5 s), successes and rejections per second and
 * p50/p99 of queue wait and total latency. A bounded ring per class (at most
 * `capacity` samples, 4096 by default); at higher rates the window is the
 * span the ring covers. Fed from PipelineOptions.onDone; percentiles are
 * computed only when the dashboard asks.
 */
import type { Clock } from '../clock.js';
import type { RequestContext } from '../accept/context.js';

interface Sample {
  at: number;
  queueMs: number;
  totalMs: number;
  ok: boolean;
}

export interface LiveClassFigures {
  okPerSec: number;
  rejectedPerSec: number;
  /** Milliseconds; null when no request finished in the window. */
  queueP50: number | null;
  queueP99: number | null;
  totalP50: number | null;
  totalP99: number | null;
}

/**
 * Samples in parallel typed arrays: recording allocates nothing (an object per
 * sample would live for thousands of requests, be promoted and cost old-generation
 * collections).
 */
class Ring {
  readonly at: Float64Array;
  readonly queueMs: Float64Array;
  readonly totalMs: Float64Array;
  readonly ok: Uint8Array;
  next = 0;
  size = 0;
  /** Clock time of the first sample: a class seen for less than the window is rated over its age. */
  since = 0;
  constructor(readonly capacity: number) {
    this.at = new Float64Array(capacity);
    this.queueMs = new Float64Array(capacity);
    this.totalMs = new Float64Array(capacity);
    this.ok = new Uint8Array(capacity);
  }
  push(at: number, queueMs: number, totalMs: number, ok: boolean): void {
    const i = this.next;
    this.at[i] = at;
    this.queueMs[i] = queueMs;
    this.totalMs[i] = totalMs;
    this.ok[i] = ok ? 1 : 0;
    this.next = i + 1 === this.capacity ? 0 : i + 1;
    if (this.size < this.capacity) this.size++;
  }
  /** The samples held, as objects (read only when the dashboard asks). */
  samples(): Sample[] {
    const out: Sample[] = [];
    for (let i = 0; i < this.size; i++) out.push({ at: this.at[i]!, queueMs: this.queueMs[i]!, totalMs: this.totalMs[i]!, ok: this.ok[i] === 1 });
    return out;
  }
}

export class LiveStats {
  private readonly rings = new Map<string, Ring>();

  constructor(
    private readonly clock: Clock,
    private readonly windowMs = 5000,
    private readonly capacity = 4096,
  ) {}

  readonly record = (ctx: RequestContext): void => {
    const name = ctx.klass?.name;
    if (name === undefined) return;
    let r = this.rings.get(name);
    const now = this.clock.now();
    if (!r) {
      this.rings.set(name, (r = new Ring(this.capacity)));
      r.since = now;
    }
    r.push(now, ctx.queueMs, now - ctx.start, ctx.outcome === 'forwarded' && ctx.status < 500);
  };

  figures(className: string): LiveClassFigures {
    const now = this.clock.now();
    const r = this.rings.get(className);
    const recent = (r?.samples() ?? []).filter((s) => now - s.at <= this.windowMs);
    // A full ring whose oldest sample is still in the window covers less than the window.
    const full = r !== undefined && r.size === r.capacity && recent.length === r.capacity;
    const spanMs =
      full && recent.length > 0
        ? Math.max(1, now - Math.min(...recent.map((s) => s.at)))
        : Math.max(1000, Math.min(this.windowMs, now - (r?.since ?? now)));
    const ok = recent.filter((s) => s.ok);
    const q = ok.map((s) => s.queueMs).sort((a, b) => a - b);
    const t = ok.map((s) => s.totalMs).sort((a, b) => a - b);
    return {
      okPerSec: round((ok.length * 1000) / spanMs),
      rejectedPerSec: round(((recent.length - ok.length) * 1000) / spanMs),
      queueP50: pct(q, 50),
      queueP99: pct(q, 99),
      totalP50: pct(t, 50),
      totalP99: pct(t, 99),
    };
  }
}

/** Nearest-rank percentile of sorted values. */
function pct(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return round(sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!);
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
