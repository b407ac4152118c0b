/**
 * What computes a concurrency limit, apart from what enforces it (the
 * scheduler). After Netflix concurrency-limits' `limit/` vs `limiter/` split:
 * the scheduler feeds one sample per finished upstream exchange and reads
 * `limit` back; it never needs to know the algorithm.
 */

/** One finished upstream exchange, as the limit sees it. */
export interface LimitSample {
  /** Time from sending upstream to the response headers, in ms. */
  readonly rttMs: number;
  /** Requests in flight to the upstream when this one started, itself included. */
  readonly inFlight: number;
  /**
   * The upstream showed overload (503 from it, timeout, reset): counts against
   * the limit, its latency is not a sample.
   */
  readonly dropped: boolean;
  /** Clock time of completion, in ms. */
  readonly now: number;
}

/** Snapshot for /status. */
export interface AdaptiveLimitStatus {
  algorithm: 'gradient';
  limit: number;
  /** 'probe' while measuring the no-load latency at `min` concurrency. */
  phase: 'probe' | 'run';
  /** No-load latency (median of the last probe), ms; null before the first probe ends. */
  minRttMs: number | null;
  /** Median latency of the last window, ms; null before the first window. */
  sampleRttMs: number | null;
}

export interface AdaptiveLimit {
  /** The current limit: a whole number within [min, max]. */
  readonly limit: number;
  /** Feeds one sample; returns true when `limit` changed. */
  onSample(s: LimitSample): boolean;
  status(): AdaptiveLimitStatus;
}
