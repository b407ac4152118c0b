/**
 * The gradient limit: finds an upstream's concurrency knee from the latency of
 * its responses.
 *
 * Sources: Envoy's adaptive concurrency filter (`GradientController`:
 * periodic min-RTT measurement at a pinned low concurrency, a sample RTT per
 * window, gradient = minRTT·(1+buffer) / sampleRTT clamped to [0.5, 2], new
 * limit = gradient·limit + √(gradient·limit)) and Netflix concurrency-limits'
 * `Gradient2Limit` (no growth while the caller is application-limited: fewer
 * than half the limit in flight; exponential smoothing of the new limit).
 *
 * Differences and reasons:
 * - A probe sample counts only when the request started with at most `min`
 *   in flight (each sample carries its start concurrency), so requests still
 *   running from before the probe do not raise the measured min RTT.
 * - A window whose median is below the min RTT lowers the min RTT at once
 *   (a faster backend need not wait for the next probe).
 * - The window's median is corrected by sluice's own event-loop delay over the
 *   window (limit/loop-lag.ts): on a busy or CPU-starved proxy, responses wait
 *   for the event loop, and without the correction that wait reads as upstream
 *   queueing and drives the limit to `min`. When the delay exceeds the min RTT
 *   itself the window is not trusted and the limit holds.
 * - Overload answers (503 from the upstream, timeouts, resets) in a window cap
 *   the new limit at 0.9 × the current one: a backend that refuses instead of
 *   slowing down still pushes the limit down.
 *
 * Cost: O(1) per sample; one sort of at most WINDOW_CAP numbers per window.
 */
import type { AdaptivePolicy } from '../../policy/types.js';
import type { AdaptiveLimit, AdaptiveLimitStatus, LimitSample } from './types.js';
import { loopLagReader } from './loop-lag.js';

/** Samples kept per window (a uniform reservoir beyond this). */
const WINDOW_CAP = 256;
/** Samples a probe collects before it ends (Envoy: request_count 50). */
const PROBE_SAMPLES = 25;
/** A probe ends after this long even with fewer samples (low traffic). */
const PROBE_MAX_MS = 2000;
/** Fewest samples a window needs to move the limit. */
const WINDOW_MIN_SAMPLES = 5;
const PROBE_JITTER = 0.1;
const DROP_BACKOFF = 0.9;

export class GradientLimit implements AdaptiveLimit {
  private value: number;
  /** Fractional limit; `value` is its floor. */
  private estimate: number;
  private phase: 'probe' | 'run' = 'probe';
  private minRtt = NaN;
  private lastSampleRtt = NaN;
  private readonly window = new Float64Array(WINDOW_CAP);
  private seen = 0;
  private drops = 0;
  private maxInFlight = 0;
  private windowStart: number;
  private readonly probe: number[] = [];
  private probeStart: number;
  private nextProbeAt = Infinity;

  /**
   * @param cfg knobs (min, max, initial, tolerance, smoothing, windowMs, probeIntervalMs)
   * @param now clock time in ms; the first probe starts at once
   * @param random jitter source in [0, 1) (tests pass a fixed one)
   * @param lag mean event-loop delay in ms since its previous call (tests pass () => 0)
   */
  constructor(
    private readonly cfg: AdaptivePolicy,
    now: number,
    private readonly random: () => number = Math.random,
    private readonly lag: () => number = loopLagReader(),
  ) {
    this.estimate = cfg.initial;
    this.value = cfg.min;
    this.windowStart = now;
    this.probeStart = now;
  }

  get limit(): number {
    return this.value;
  }

  onSample(s: LimitSample): boolean {
    const before = this.value;
    if (this.phase === 'probe') this.probeSample(s);
    else this.runSample(s);
    return this.value !== before;
  }

  status(): AdaptiveLimitStatus {
    return {
      algorithm: 'gradient',
      limit: this.value,
      phase: this.phase,
      minRttMs: Number.isNaN(this.minRtt) ? null : round(this.minRtt),
      sampleRttMs: Number.isNaN(this.lastSampleRtt) ? null : round(this.lastSampleRtt),
    };
  }

  private probeSample(s: LimitSample): void {
    if (!s.dropped && s.inFlight <= this.cfg.min) this.probe.push(s.rttMs);
    const timedOut = s.now - this.probeStart >= PROBE_MAX_MS;
    if (this.probe.length < PROBE_SAMPLES && !timedOut) return;
    if (this.probe.length > 0) this.minRtt = Math.max(median(this.probe, this.probe.length) - this.lag(), 0.001);
    else if (Number.isNaN(this.minRtt) && !s.dropped) this.minRtt = s.rttMs;
    this.probe.length = 0;
    if (Number.isNaN(this.minRtt)) {
      // Nothing usable yet (only overload answers): keep probing.
      this.probeStart = s.now;
      return;
    }
    this.phase = 'run';
    this.value = Math.floor(this.estimate);
    this.resetWindow(s.now);
    const jitter = 1 + PROBE_JITTER * (2 * this.random() - 1);
    this.nextProbeAt = s.now + this.cfg.probeIntervalMs * jitter;
  }

  private runSample(s: LimitSample): void {
    if (s.dropped) this.drops++;
    else {
      if (this.seen < WINDOW_CAP) this.window[this.seen] = s.rttMs;
      else {
        const j = Math.floor(this.random() * (this.seen + 1));
        if (j < WINDOW_CAP) this.window[j] = s.rttMs;
      }
      this.seen++;
    }
    if (s.inFlight > this.maxInFlight) this.maxInFlight = s.inFlight;
    if (s.now - this.windowStart < this.cfg.windowMs) return;
    if (this.seen >= WINDOW_MIN_SAMPLES || this.drops > 0) this.update();
    this.resetWindow(s.now);
    if (s.now >= this.nextProbeAt) {
      this.phase = 'probe';
      this.probeStart = s.now;
      this.value = this.cfg.min;
    }
  }

  private update(): void {
    const cfg = this.cfg;
    const limit = this.estimate;
    let target = limit;
    const lag = this.lag();
    if (this.seen >= WINDOW_MIN_SAMPLES && lag < this.minRtt) {
      const rtt = Math.max(median(this.window, Math.min(this.seen, WINDOW_CAP)) - lag, 0.001);
      this.lastSampleRtt = rtt;
      if (rtt < this.minRtt) this.minRtt = rtt;
      const gradient = Math.max(0.5, Math.min(2, (this.minRtt * cfg.tolerance) / rtt));
      const scaled = gradient * limit;
      // Envoy adds √limit of burst headroom on every update, which settles a knee of 8 at
      // about 13. Here the headroom shrinks to nothing as latency nears the tolerance
      // (full at min RTT), so the limit settles where latency is min RTT × tolerance.
      const room = Math.max(0, Math.min(1, (gradient - 1) / (cfg.tolerance - 1)));
      target = scaled + room * Math.sqrt(scaled);
      // Application-limited: too little traffic to tell whether more would queue.
      if (target > limit && this.maxInFlight < limit / 2) target = limit;
    }
    if (this.drops > 0) target = Math.min(target, limit * DROP_BACKOFF);
    const next = limit * (1 - cfg.smoothing) + target * cfg.smoothing;
    this.estimate = Math.max(cfg.min, Math.min(cfg.max, next));
    this.value = Math.floor(this.estimate);
  }

  private resetWindow(now: number): void {
    this.windowStart = now;
    this.seen = 0;
    this.drops = 0;
    this.maxInFlight = 0;
  }
}

/** Median of the first n values (sorts a copy). */
function median(values: ArrayLike<number>, n: number): number {
  const a = Array.from({ length: n }, (_, i) => values[i]!).sort((x, y) => x - y);
  return n % 2 === 1 ? a[(n - 1) >> 1]! : (a[n / 2 - 1]! + a[n / 2]!) / 2;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
