/**
 * The rate limit of one class: which bucket a request takes a token from
 * (its key), where that bucket lives (this process, or Redis), and what the
 * answer is. Decisions are values; only the Redis path is asynchronous.
 */
import { ProxyError } from '../errors.js';
import type { Clock } from '../clock.js';
import type { RequestContext } from '../accept/context.js';
import type { ClassPolicy, RateLimitPolicy } from '../policy/types.js';
import { KeyedBuckets, gcraParams, type GcraParams, type Take, type KeyedBucketsOptions } from './gcra.js';
import type { RedisStore } from './redis-store.js';
import { factsOf } from '../classify/facts.js';
import { ipKey } from './keys.js';

export type AdmitDecision =
  | { readonly kind: 'admit' }
  /** Proceed after `ms` (onLimit: queue); call `limiter.refund(key, shared)` if the client leaves before. */
  | { readonly kind: 'delay'; readonly ms: number; readonly key: string; readonly shared: boolean; readonly limiter: ClassLimiter }
  | { readonly kind: 'reject'; readonly error: ProxyError };

export const ADMIT: AdmitDecision = Object.freeze({ kind: 'admit' });

/** Key of a request under `rateLimit.key`; requests lacking the header/cookie/claim share the bucket '-'. */
export type KeyOf = (ctx: RequestContext) => string;

export function keyFunction(key: RateLimitPolicy['key'], className: string, ipv6Prefix = 64): KeyOf {
  if (key === 'ip') return (ctx) => ipKey(ctx.clientIp || ctx.peer, ipv6Prefix);
  if (key === 'class') return () => className;
  const colon = key.indexOf(':');
  const kind = key.slice(0, colon);
  const name = key.slice(colon + 1);
  // Read through the request's one view of facts (classify/facts.ts), as classification does.
  if (kind === 'header') {
    const h = name.toLowerCase();
    return (ctx) => factsOf(ctx).header(h) ?? '-';
  }
  if (kind === 'cookie') return (ctx) => factsOf(ctx).cookie(name) || '-';
  // jwt:CLAIM, a dotted path into nested claims (org.id walks org → id)
  return (ctx) => factsOf(ctx).claim(name) ?? '-';
}

/**
 * Quota and window (whole seconds) of a rate, exactly: q/w = rate/per. The
 * smallest window that makes the quota a whole number is chosen (0.5/s →
 * q=1;w=2, 2.5/s → q=5;w=2, 100/min → q=5;w=3, 1/h → q=1;w=3600). A rate with
 * no such window up to 10^6 s (e.g. 1/7 per ms... or an irrational-looking
 * decimal) gets the window of `per` (at least 1 s) and the quota rounded down:
 * a client pacing by it never exceeds the limit (issue 16.6).
 */
export function quotaWindow(rate: number, perMs: number): { q: number; w: number } {
  const perSecond = (rate * 1000) / perMs;
  for (let w = 1; w <= 1_000_000; w++) {
    const q = perSecond * w;
    const r = Math.round(q);
    if (r >= 1 && Math.abs(q - r) <= 1e-9 * q) return { q: r, w };
  }
  const w = Math.max(1, Math.round(perMs / 1000));
  return { q: Math.max(1, Math.floor(perSecond * w)), w: Math.max(w, Math.ceil(1 / perSecond)) };
}

/** Structured-field string (RFC 8941 sf-string) of a class name. */
function sfString(s: string): string {
  return `"${s.replace(/["\\]/g, '\\$&')}"`;
}

/** Longest a request of a failClosed class is held while its Redis store makes its first connection. */
export const STORE_CONNECT_WAIT_MS = 5000;

export class ClassLimiter {
  readonly params: GcraParams;
  readonly local: KeyedBuckets;
  readonly keyOf: KeyOf;
  /** `RateLimit-Policy` value, computed once (draft-ietf-httpapi-ratelimit-headers-10 syntax). */
  readonly policyHeader: string;
  private readonly sfName: string;
  private maxWaitMs: number;
  private readonly redisPrefix: string;
  private readonly out: Take = { waitMs: 0, rejected: false, remaining: 0 };
  /** Clock reading at construction: the failClosed connection grace runs from here. */
  private readonly bornAt: number;

  constructor(
    /** The class as of the latest policy (replaced by `retarget` on reload). */
    public klass: ClassPolicy,
    readonly policy: RateLimitPolicy,
    private readonly clock: Clock,
    readonly store: RedisStore | undefined,
    bucketOpts: KeyedBucketsOptions = {},
  ) {
    this.bornAt = clock.now();
    this.params = gcraParams(policy.rate, policy.perMs, policy.burst);
    this.local = new KeyedBuckets(this.params, clock, bucketOpts);
    this.keyOf = keyFunction(policy.key, klass.name, policy.ipv6Prefix);
    this.maxWaitMs = policy.onLimit === 'queue' ? klass.queue.timeoutMs : 0;
    this.sfName = sfString(klass.name);
    const { q, w } = quotaWindow(policy.rate, policy.perMs);
    this.policyHeader = `${this.sfName};q=${q};w=${w};burst=${policy.burst}`;
    // "rl2": TATs in integer µs (0.1 stored fractional ms under "rl"; the two must not meet in a rolling upgrade).
    this.redisPrefix = `sluice:rl2:{${klass.name}}:${policy.rate}/${policy.perMs}/${policy.burst}:`;
  }

  /**
   * Whether this limiter's buckets stay valid under `klass` of a new policy:
   * same rate, period, burst, key, IPv6 prefix and store. Anything else about
   * the class (queue timeout, priority, match, ...) may change: `retarget` takes it.
   */
  sameAs(klass: ClassPolicy): boolean {
    const p = klass.rateLimit;
    const q = this.policy;
    return (
      p !== undefined &&
      klass.name === this.klass.name &&
      p.rate === q.rate &&
      p.perMs === q.perMs &&
      p.burst === q.burst &&
      this.sameKeys(klass) &&
      p.store?.redis === q.store?.redis &&
      p.store?.failClosed === q.store?.failClosed
    );
  }

  /** Whether requests get the same keys under `klass` (so buckets can be carried over). */
  sameKeys(klass: ClassPolicy): boolean {
    const p = klass.rateLimit;
    return p !== undefined && klass.name === this.klass.name && p.key === this.policy.key && p.ipv6Prefix === this.policy.ipv6Prefix;
  }

  /** Takes the new policy's class (queue timeout, onLimit) while keeping the buckets. */
  retarget(klass: ClassPolicy): void {
    this.klass = klass;
    this.maxWaitMs = klass.rateLimit?.onLimit === 'queue' ? klass.queue.timeoutMs : 0;
  }

  admit(ctx: RequestContext): AdmitDecision | Promise<AdmitDecision> {
    const key = this.keyOf(ctx);
    if (this.store && this.store.connected) return this.admitShared(key);
    if (this.store && this.policy.store?.failClosed) {
      // Just started (or just configured): hold the request until the first connection, within a bound.
      if (!this.store.everConnected) return this.admitWhenConnected(key);
      return this.storeDown();
    }
    return this.decide(key, this.local.take(key, this.maxWaitMs, this.out), true);
  }

  /**
   * The grace is STORE_CONNECT_WAIT_MS from this limiter's construction in all
   * (not per request): a Redis that is down from the start costs the first
   * requests at most that, later ones nothing (they get the 429 at once).
   */
  private async admitWhenConnected(key: string): Promise<AdmitDecision> {
    const left = this.bornAt + STORE_CONNECT_WAIT_MS - this.clock.now();
    if (left <= 0) return this.storeDown();
    const ms = Math.min(left, Math.max(this.klass.queue.timeoutMs, 1));
    let timer: { cancel(): void } | undefined;
    await Promise.race([this.store!.ready, new Promise<void>((r) => (timer = this.clock.setTimer(r, ms)))]);
    timer?.cancel();
    return this.store!.connected ? this.admitShared(key) : this.storeDown();
  }

  private async admitShared(key: string): Promise<AdmitDecision> {
    const out: Take = { waitMs: 0, rejected: false, remaining: 0 };
    try {
      await this.store!.take(this.redisPrefix + key, this.params, this.maxWaitMs, out);
      return this.decide(key, out, false);
    } catch (err) {
      this.store!.down(err as Error);
      if (this.policy.store?.failClosed) return this.storeDown();
      return this.decide(key, this.local.take(key, this.maxWaitMs, this.out), true);
    }
  }

  private decide(key: string, t: Take, local: boolean): AdmitDecision {
    if (!t.rejected) {
      if (t.waitMs <= 0) return ADMIT;
      return { kind: 'delay', ms: t.waitMs, key, shared: !local, limiter: this };
    }
    const retryMs = t.waitMs;
    const retry = Math.max(1, Math.ceil(retryMs / 1000));
    return {
      kind: 'reject',
      error: new ProxyError('RATE_LIMITED', `rate limit of class '${this.klass.name}' exceeded (${this.policy.rate} per ${this.policy.perMs} ms, burst ${this.policy.burst})`, {
        className: this.klass.name,
        retryAfterMs: retryMs,
        headers: {
          'ratelimit-policy': this.policyHeader,
          ratelimit: `${this.sfName};r=0;t=${retry}`,
        },
      }),
    };
  }

  private storeDown(): AdmitDecision {
    return {
      kind: 'reject',
      error: new ProxyError('RATE_LIMITED', `rate limit store of class '${this.klass.name}' is unreachable (failClosed)`, {
        className: this.klass.name,
        retryAfterMs: 1000,
        headers: { 'ratelimit-policy': this.policyHeader, ratelimit: `${this.sfName};r=0;t=1` },
      }),
    };
  }

  /**
   * A delayed request left before its turn: give its reserved token back, to
   * the bucket it came from (Redis when `shared`; a local key of '' is a no-op).
   */
  refund(key: string, shared = false): void {
    if (!shared) {
      if (key !== '') this.local.refund(key);
    } else if (this.store?.connected) void this.store.refund(this.redisPrefix + key, this.params).catch(() => {});
  }

  close(): void {
    this.local.close();
    this.store?.release();
  }
}
