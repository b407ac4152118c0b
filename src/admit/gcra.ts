/**
 * Token bucket as GCRA (generic cell rate algorithm): one number per key, the
 * theoretical arrival time (TAT, integer µs). With emission interval T = per/rate and
 * tolerance τ = burst·T, a fresh key admits `burst` requests at once and then
 * one every T, which is exactly a bucket of `burst` tokens refilled at
 * rate/per. The same arithmetic runs in Redis (redis-store.ts) for shared limits.
 *
 * Why not one bottleneck limiter per key: measured 5.2 KB of heap and one
 * heartbeat interval per limiter (200k keys → 1.3 GB RSS); see
 * bench/bottleneck-eval.ts. Here a key costs a Map entry and 8 bytes of slab.
 *
 * Memory stays bounded: a key whose TAT is in the past is indistinguishable
 * from an absent key (its bucket is full), so a sweeper deletes such keys
 * incrementally; `maxKeys` is a hard cap that evicts the oldest key first.
 */
import type { Clock, TimerHandle } from '../clock.js';

/** Outcome of taking one token. */
export interface Take {
  /** 0: admitted now; >0: admitted after waiting this many ms (reserved); <0 never (see rejected). */
  waitMs: number;
  /** True when the request may not proceed (wait longer than allowed). */
  rejected: boolean;
  /** Whole tokens left after this request (0 when rejected or waiting). */
  remaining: number;
}

/**
 * GCRA parameters in integer microseconds. Every quantity the step compares is
 * an integer below 2^53, so the arithmetic is exact (no rounding, no epsilon):
 * a fresh key's first request computes allowAt = now + T − burst·T, which for
 * burst ≥ 1 is ≤ now exactly. (The floating-point version computed
 * now + T − T as now + 1 ulp for some now and T and refused it: issue 16.2.)
 */
export interface GcraParams {
  /** Emission interval T: microseconds per token, an integer ≥ 1 (per/rate rounded up, see gcraParams). */
  readonly intervalUs: number;
  /** Tokens the bucket holds (integer ≥ 1). */
  readonly burst: number;
  /** burst · intervalUs. */
  readonly toleranceUs: number;
}

/**
 * Largest tolerance (burst · per/rate) a policy may ask for: 2^51 µs, about 71
 * years (the policy compiler's check). The arithmetic itself stays exact up to
 * 2^52 (Redis adds epoch µs ≈ 2^50.6 to it, all below 2^53), which is where
 * gcraParams throws, so rounding T up can never turn an accepted policy into a throw.
 */
export const MAX_TOLERANCE_US = 2 ** 51;

/**
 * Parameters of a limit of `rate` requests per `perMs` with `burst`. T = per/rate
 * in µs, rounded up to a whole µs unless it is within 1e-6 µs of one: the
 * admitted rate is never above the configured one, and below it by less than
 * 1 µs per interval (relative error < 1e-6 for intervals ≥ 1 s, < 1e-3 at 1 ms).
 * Throws RangeError when burst · T exceeds 2 · MAX_TOLERANCE_US (the policy compiler refuses above MAX_TOLERANCE_US).
 */
export function gcraParams(rate: number, perMs: number, burst: number): GcraParams {
  const exact = (perMs * 1000) / rate;
  const near = Math.round(exact);
  const intervalUs = Math.max(1, Math.abs(exact - near) < 1e-6 ? near : Math.ceil(exact));
  const toleranceUs = intervalUs * burst;
  if (!Number.isInteger(burst) || burst < 1 || toleranceUs > 2 * MAX_TOLERANCE_US) {
    throw new RangeError(`rate limit out of range: burst ${burst} × ${intervalUs} µs per token`);
  }
  return Object.freeze({ intervalUs, burst, toleranceUs });
}

/** Integer microseconds of a clock reading in ms. */
export function toUs(ms: number): number {
  return Math.floor(ms * 1000);
}

/**
 * Pure GCRA step shared by the local store and the tests; the Lua script of
 * redis-store.ts is the same step. All times integer µs; returns the new TAT,
 * or undefined when rejected. `maxWaitUs` > 0 reserves a future token.
 */
export function gcraStep(tat: number, nowUs: number, p: GcraParams, maxWaitUs: number, out: Take): number | undefined {
  const base = tat > nowUs ? tat : nowUs;
  const next = base + p.intervalUs;
  const allowAt = next - p.toleranceUs;
  if (allowAt <= nowUs) {
    out.waitMs = 0;
    out.rejected = false;
    out.remaining = Math.floor((nowUs - allowAt) / p.intervalUs);
    return next;
  }
  const wait = allowAt - nowUs;
  out.waitMs = wait / 1000;
  out.remaining = 0;
  if (wait <= maxWaitUs) {
    out.rejected = false;
    return next;
  }
  out.rejected = true;
  return undefined;
}

export interface KeyedBucketsOptions {
  /** Hard cap on tracked keys; the oldest key is forgotten first. Default 1,000,000. */
  maxKeys?: number;
  /** Keys examined per sweep tick. Default 50,000. */
  sweepBatch?: number;
  /** Sweep tick period. Default 250 ms. */
  sweepEveryMs?: number;
}

/** Token buckets by key, for one limit (one class). */
export class KeyedBuckets {
  private readonly index = new Map<string, number>();
  private tats: Float64Array;
  private free: number[] = [];
  private used = 0;
  private sweepIt: IterableIterator<[string, number]> | undefined;
  private timer: TimerHandle | undefined;
  private readonly maxKeys: number;
  private readonly sweepBatch: number;
  private readonly sweepEveryMs: number;
  /** Keys forgotten by the hard cap while still limited (for status/metrics). */
  capEvictions = 0;
  private closed = false;

  constructor(
    readonly params: GcraParams,
    private readonly clock: Clock,
    opts: KeyedBucketsOptions = {},
  ) {
    this.maxKeys = opts.maxKeys ?? 1_000_000;
    this.sweepBatch = opts.sweepBatch ?? 50_000;
    this.sweepEveryMs = opts.sweepEveryMs ?? 250;
    this.tats = new Float64Array(Math.min(1024, this.maxKeys));
  }

  get size(): number {
    return this.index.size;
  }

  /** Takes one token for `key`; `maxWaitMs` > 0 reserves a future token (onLimit: queue). */
  take(key: string, maxWaitMs: number, out: Take): Take {
    const now = toUs(this.clock.now());
    const slot = this.index.get(key);
    const tat = slot === undefined ? now : this.tats[slot]!;
    const next = gcraStep(tat, now, this.params, toUs(maxWaitMs), out);
    if (next !== undefined) {
      if (slot !== undefined) this.tats[slot] = next;
      else this.insert(key, next);
    }
    return out;
  }

  /** Gives back a token reserved by a request that then went away while waiting. */
  refund(key: string): void {
    const slot = this.index.get(key);
    if (slot !== undefined) this.tats[slot] = this.tats[slot]! - this.params.intervalUs;
  }

  /**
   * Copies the fill level of every limited key of `old` (a bucket under other
   * parameters) into this one: a key with fraction f of its allowance left
   * keeps fraction f of the new burst (issue 16.4). Reservations beyond an
   * empty bucket count as empty. Keys whose bucket is full are not copied (absent = full).
   */
  carryOver(old: KeyedBuckets): number {
    const now = toUs(this.clock.now());
    let n = 0;
    for (const [key, slot] of old.index) {
      const debt = old.tats[slot]! - now;
      if (debt <= 0) continue;
      const used = Math.min(1, debt / old.params.toleranceUs);
      this.insert(key, now + Math.ceil(used * this.params.toleranceUs));
      n++;
    }
    return n;
  }

  /** TAT of a key in µs (undefined: absent, a full bucket). For tests and status. */
  tatOf(key: string): number | undefined {
    const slot = this.index.get(key);
    return slot === undefined ? undefined : this.tats[slot];
  }

  private insert(key: string, tat: number): void {
    if (this.index.size >= this.maxKeys) {
      const oldest = this.index.keys().next();
      if (!oldest.done) {
        const s = this.index.get(oldest.value)!;
        if (this.tats[s]! > toUs(this.clock.now())) this.capEvictions++;
        this.remove(oldest.value, s);
      }
    }
    let slot = this.free.pop();
    if (slot === undefined) {
      slot = this.used++;
      if (slot >= this.tats.length) {
        const grown = new Float64Array(Math.min(this.maxKeys, this.tats.length * 2));
        grown.set(this.tats);
        this.tats = grown;
      }
    }
    this.tats[slot] = tat;
    this.index.set(key, slot);
    if (!this.timer && !this.closed) this.timer = this.clock.setTimer(this.sweep, this.sweepEveryMs);
  }

  private remove(key: string, slot: number): void {
    this.index.delete(key);
    this.free.push(slot);
  }

  /** Deletes keys whose bucket is full again, a batch per tick, resuming where it stopped. */
  readonly sweep = (): void => {
    this.timer = undefined;
    const now = toUs(this.clock.now());
    let n = this.sweepBatch;
    this.sweepIt ??= this.index.entries();
    while (n-- > 0) {
      const e = this.sweepIt.next();
      if (e.done) {
        this.sweepIt = undefined;
        break;
      }
      const [key, slot] = e.value;
      if (this.tats[slot]! <= now) this.remove(key, slot);
    }
    if (this.index.size === 0) {
      // Everything idle: give the slab back.
      this.sweepIt = undefined;
      this.free = [];
      this.used = 0;
      if (this.tats.length > 1024) this.tats = new Float64Array(1024);
      return;
    }
    if (!this.closed) this.timer = this.clock.setTimer(this.sweep, this.sweepEveryMs);
  };

  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
  }
}
