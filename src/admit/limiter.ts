/**
 * The rate limit of one class: which bucket a request takes a token from
 * (its key), where that bucket lives (this process, or Redis), and what the
 * answer is. Decisions are values; only the Redis path is asynchronous.
 */
import { ProxyError } from '../errors.js';
import type { Clock } from '../clock.js';
import type { RequestContext } from '../accept/context.js';
import type { ClassPolicy, RateLimitPolicy } from '../policy/types.js';
import { KeyedBuckets, type GcraParams, type Take, type KeyedBucketsOptions } from './gcra.js';
import type { RedisStore } from './redis-store.js';
import { factsOf } from '../classify/facts.js';

export type AdmitDecision =
  | { readonly kind: 'admit' }
  /** Proceed after `ms` (onLimit: queue); call `limiter.refund(key, shared)` if the client leaves before. */
  | { readonly kind: 'delay'; readonly ms: number; readonly key: string; readonly shared: boolean; readonly limiter: ClassLimiter }
  | { readonly kind: 'reject'; readonly error: ProxyError };

export const ADMIT: AdmitDecision = Object.freeze({ kind: 'admit' });

/** Key of a request under `rateLimit.key`; requests lacking the header/cookie/claim share the bucket '-'. */
export type KeyOf = (ctx: RequestContext) => string;

export function keyFunction(key: RateLimitPolicy['key'], className: string): KeyOf {
  if (key === 'ip') return (ctx) => ctx.clientIp || ctx.peer || '-';
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

/** Structured-field string (RFC 8941 sf-string) of a class name. */
function sfString(s: string): string {
  return `"${s.replace(/["\\]/g, '\\$&')}"`;
}

export class ClassLimiter {
  readonly params: GcraParams;
  readonly local: KeyedBuckets;
  readonly keyOf: KeyOf;
  /** `RateLimit-Policy` value, computed once (draft-ietf-httpapi-ratelimit-headers-10 syntax). */
  readonly policyHeader: string;
  private readonly sfName: string;
  private readonly maxWaitMs: number;
  private readonly redisPrefix: string;
  private readonly out: Take = { waitMs: 0, rejected: false, remaining: 0 };

  constructor(
    readonly klass: ClassPolicy,
    readonly policy: RateLimitPolicy,
    clock: Clock,
    readonly store: RedisStore | undefined,
    bucketOpts: KeyedBucketsOptions = {},
  ) {
    this.params = Object.freeze({ intervalMs: policy.perMs / policy.rate, burst: policy.burst });
    this.local = new KeyedBuckets(this.params, clock, bucketOpts);
    this.keyOf = keyFunction(policy.key, klass.name);
    this.maxWaitMs = policy.onLimit === 'queue' ? klass.queue.timeoutMs : 0;
    this.sfName = sfString(klass.name);
    // The draft's window is whole seconds: scale the quota to a window of at least 1 s.
    const w = Math.max(1, Math.round(policy.perMs / 1000));
    const q = Math.max(1, Math.round((policy.rate * w * 1000) / policy.perMs));
    this.policyHeader = `${this.sfName};q=${q};w=${w};burst=${policy.burst}`;
    this.redisPrefix = `sluice:rl:{${klass.name}}:${policy.rate}/${policy.perMs}/${policy.burst}:`;
  }

  /** Whether this limiter can be kept across a reload to `next` (same limit, same store). */
  sameAs(klass: ClassPolicy): boolean {
    const p = klass.rateLimit;
    const q = this.policy;
    return (
      p !== undefined &&
      p.rate === q.rate &&
      p.perMs === q.perMs &&
      p.burst === q.burst &&
      p.key === q.key &&
      p.onLimit === q.onLimit &&
      p.store?.redis === q.store?.redis &&
      p.store?.failClosed === q.store?.failClosed &&
      klass.queue.timeoutMs === this.klass.queue.timeoutMs &&
      klass.name === this.klass.name
    );
  }

  admit(ctx: RequestContext): AdmitDecision | Promise<AdmitDecision> {
    const key = this.keyOf(ctx);
    if (this.store && this.store.connected) return this.admitShared(key);
    if (this.store && this.policy.store?.failClosed) return this.storeDown();
    return this.decide(key, this.local.take(key, this.maxWaitMs, this.out), true);
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
   * A delayed request left (or was refused at shutdown) before its turn: give its
   * reserved token back, to the bucket it came from (Redis when `shared`).
   */
  refund(key: string, shared = false): void {
    if (!shared) this.local.refund(key);
    else if (this.store?.connected) void this.store.refund(this.redisPrefix + key, this.params).catch(() => {});
  }

  close(): void {
    this.local.close();
    this.store?.release();
  }
}
