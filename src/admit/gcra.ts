/**
 * Token bucket as GCRA (generic cell rate algorithm): one number per key, the
 * theoretical arrival time (TAT). With emission interval T = per/rate and
 * tolerance τ = burst·T, a fresh key admits `burst` requests at once and then
 * one every T ms, which is exactly a bucket of `burst` tokens refilled at
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

export interface GcraParams {
  /** Milliseconds per token: per / rate. */
  readonly intervalMs: number;
  /** Tokens the bucket holds. */
  readonly burst: number;
}

/** Pure GCRA step shared by the local store and the tests. Returns the new TAT, or undefined when rejected. */
export function gcraStep(tat: number, now: number, p: GcraParams, maxWaitMs: number, out: Take): number | undefined {
  const base = tat > now ? tat : now;
  const next = base + p.intervalMs;
  // base - (burst-1)·T, not next - burst·T: adding T and taking it away again can round above
  // `now` (about 3 times in 10 for a 60 s interval), which refused a fresh key with burst 1.
  const allowAt = base - (p.burst - 1) * p.intervalMs;
  if (allowAt <= now) {
    out.waitMs = 0;
    out.rejected = false;
    out.remaining = Math.floor((now - allowAt) / p.intervalMs + 1e-9);
    return next;
  }
  const wait = allowAt - now;
  out.waitMs = wait;
  out.remaining = 0;
  if (wait <= maxWaitMs) {
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
    const now = this.clock.now();
    const slot = this.index.get(key);
    const tat = slot === undefined ? now : this.tats[slot]!;
    const next = gcraStep(tat, now, this.params, maxWaitMs, out);
    if (next !== undefined) {
      if (slot !== undefined) this.tats[slot] = next;
      else this.insert(key, next);
    }
    return out;
  }

  /** Gives back a token reserved by a request that then went away while waiting. */
  refund(key: string): void {
    const slot = this.index.get(key);
    if (slot !== undefined) this.tats[slot] = this.tats[slot]! - this.params.intervalMs;
  }

  private insert(key: string, tat: number): void {
    if (this.index.size >= this.maxKeys) {
      const oldest = this.index.keys().next();
      if (!oldest.done) {
        const s = this.index.get(oldest.value)!;
        if (this.tats[s]! > this.clock.now()) this.capEvictions++;
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
    const now = this.clock.now();
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
