/**
 * Byte shaping of one class in one direction: an aggregate token bucket
 * shared by all the class's requests, an optional bucket per request (the
 * per-request cap), and a round-robin among the requests that wait.
 *
 * Fair share: waiting flows sit in a ring; each pass grants every flow at most
 * one quantum (16 KiB, or less when a bucket is smaller), so N concurrent
 * downloads of a class each get ~1/N of its rate whatever order they came in
 * (deficit round robin with equal weights). A flow held back by its own
 * per-request cap is skipped, and its share goes to the others
 * (max-min fairness, work-conserving). The ring cursor persists across passes,
 * so no flow is favoured by being first.
 *
 * One timer per shaper, armed for the moment the next grant becomes possible;
 * never a timer per chunk or per request.
 */
import type { Clock, TimerHandle } from '../clock.js';

/** Bytes per second with a burst; refilled lazily from the clock. */
export class TokenBucket {
  tokens: number;
  private last: number;

  constructor(
    readonly rate: number,
    readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  refill(now: number): void {
    if (now <= this.last) return;
    const t = this.tokens + ((now - this.last) * this.rate) / 1000;
    this.tokens = t > this.burst ? this.burst : t;
    this.last = now;
  }

  /** Milliseconds until `n` tokens are there (0 if they are). */
  msUntil(n: number): number {
    return n <= this.tokens ? 0 : ((n - this.tokens) * 1000) / this.rate;
  }
}

/** Default bucket size: 1/10 s of the rate, at least 16 KiB. */
export function defaultBurst(rate: number): number {
  return Math.max(16 * 1024, Math.ceil(rate / 10));
}

/** A stream (one request's body or response) waiting for bytes. Implemented by the shaped streams. */
export interface Flow {
  /** Bytes still wanted for the current chunk. */
  need: number;
  /** Its own bucket (perRequest cap), if any. */
  own: TokenBucket | undefined;
  /** Ring links while waiting; undefined when not waiting. */
  next: Flow | undefined;
  prev: Flow | undefined;
  /** Receives `n` granted bytes; may call `request` again synchronously. */
  grant(n: number): void;
}

export const QUANTUM = 16 * 1024;

export class Shaper {
  /** Aggregate bucket; undefined when only per-request caps are configured. */
  readonly agg: TokenBucket | undefined;
  private cursor: Flow | undefined;
  private waiting = 0;
  private timer: TimerHandle | undefined;
  private timerAt = Infinity;
  private pumping = false;
  private readonly quantum: number;
  /** Bytes granted so far (for metrics). */
  granted = 0;

  constructor(
    private readonly clock: Clock,
    rate: number | undefined,
    burst: number | undefined,
    /** Per-request cap and its burst, when configured. */
    readonly perRequest: number | undefined,
    private readonly onBytes?: (n: number) => void,
  ) {
    const now = clock.now();
    this.agg = rate !== undefined ? new TokenBucket(rate, burst ?? defaultBurst(rate), now) : undefined;
    let q = QUANTUM;
    if (this.agg && this.agg.burst < q) q = this.agg.burst;
    if (perRequest !== undefined && defaultBurst(perRequest) < q) q = defaultBurst(perRequest);
    this.quantum = Math.max(1, Math.floor(q));
  }

  /** A bucket for one flow's per-request cap, or undefined. */
  ownBucket(): TokenBucket | undefined {
    if (this.perRequest === undefined) return undefined;
    return new TokenBucket(this.perRequest, Math.min(this.agg?.burst ?? Infinity, defaultBurst(this.perRequest)), this.clock.now());
  }

  get waitingFlows(): number {
    return this.waiting;
  }

  /** `flow` wants `n` more bytes; they arrive through flow.grant, now or later. */
  request(flow: Flow, n: number): void {
    flow.need = n;
    if (n <= 0) return;
    if (flow.next === undefined) this.link(flow);
    if (!this.pumping) this.pump();
  }

  /** The flow is gone (closed, destroyed): forget it. */
  remove(flow: Flow): void {
    flow.need = 0;
    if (flow.next !== undefined) this.unlink(flow);
  }

  private link(f: Flow): void {
    const c = this.cursor;
    if (!c) {
      f.next = f.prev = f;
      this.cursor = f;
    } else {
      // Insert just before the cursor: the newcomer is served last in this round.
      f.prev = c.prev;
      f.next = c;
      c.prev!.next = f;
      c.prev = f;
    }
    this.waiting++;
  }

  private unlink(f: Flow): void {
    if (f.next === f) this.cursor = undefined;
    else {
      f.prev!.next = f.next;
      f.next!.prev = f.prev;
      if (this.cursor === f) this.cursor = f.next;
    }
    f.next = f.prev = undefined;
    this.waiting--;
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.timerAt = Infinity;
    this.pump();
  };

  /** Grants what the buckets allow, round-robin, then sleeps until the next grant is possible. */
  pump(): void {
    this.pumping = true;
    const now = this.clock.now();
    const agg = this.agg;
    agg?.refill(now);
    let wakeIn = Infinity;
    try {
      let idle = 0;
      // Walk the ring until a full lap grants nothing.
      while (this.cursor && idle < this.waiting) {
        const f = this.cursor;
        const want = f.need < this.quantum ? f.need : this.quantum;
        if (agg && agg.tokens < want) {
          wakeIn = Math.min(wakeIn, agg.msUntil(want));
          break;
        }
        const own = f.own;
        if (own) {
          own.refill(now);
          if (own.tokens < want) {
            wakeIn = Math.min(wakeIn, own.msUntil(want));
            this.cursor = f.next;
            idle++;
            continue;
          }
          own.tokens -= want;
        }
        if (agg) agg.tokens -= want;
        f.need -= want;
        this.granted += want;
        idle = 0;
        this.cursor = f.next;
        if (f.need <= 0) this.unlink(f);
        this.onBytes?.(want);
        f.grant(want);
      }
    } finally {
      this.pumping = false;
    }
    if (this.cursor) this.arm(wakeIn === Infinity ? 1 : wakeIn);
  }

  private arm(ms: number): void {
    const at = this.clock.now() + ms;
    if (this.timer && this.timerAt <= at) return;
    this.timer?.cancel();
    this.timerAt = at;
    // At least 1 ms: a timer cannot fire sooner, and tokens for a quantum take longer anyway.
    this.timer = this.clock.setTimer(this.onTimer, Math.max(1, Math.ceil(ms)));
  }

  close(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }
}
