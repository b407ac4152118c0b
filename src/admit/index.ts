/**
 * The admit stage: per-class rate limits between classification and
 * scheduling. Built from the policy and updated on reload; a class whose
 * limit did not change keeps its buckets (and its debts).
 */
import type { Clock } from '../clock.js';
import type { RequestContext } from '../accept/context.js';
import type { ClassPolicy, Policy } from '../policy/types.js';
import type { Logger } from '../telemetry/log.js';
import { ClassLimiter, ADMIT, type AdmitDecision } from './limiter.js';
import { RedisStore } from './redis-store.js';
import type { KeyedBucketsOptions } from './gcra.js';

export { ClassLimiter, type AdmitDecision } from './limiter.js';
export { KeyedBuckets, gcraStep, type Take, type GcraParams } from './gcra.js';
export { RedisStore } from './redis-store.js';

export interface AdmissionOptions {
  clock: Clock;
  log: Logger;
  buckets?: KeyedBucketsOptions;
}

export class Admission {
  private limiters = new Map<string, ClassLimiter>();
  private readonly stores = new Map<string, RedisStore>();

  constructor(
    policy: Policy,
    private readonly opts: AdmissionOptions,
  ) {
    this.update(policy);
  }

  update(policy: Policy): void {
    const next = new Map<string, ClassLimiter>();
    for (const k of policy.classes) {
      if (!k.rateLimit) continue;
      const old = this.limiters.get(k.name);
      if (old && old.sameAs(k)) next.set(k.name, old);
      else next.set(k.name, this.build(k));
    }
    for (const [name, l] of this.limiters) if (next.get(name) !== l) l.close();
    this.limiters = next;
    for (const [url, s] of this.stores) if (!s.inUse) this.stores.delete(url);
  }

  private build(k: ClassPolicy): ClassLimiter {
    const url = k.rateLimit!.store?.redis;
    let store: RedisStore | undefined;
    if (url !== undefined) {
      store = this.stores.get(url);
      if (!store) this.stores.set(url, (store = new RedisStore(url, this.opts.log)));
      store.acquire();
    }
    return new ClassLimiter(k, k.rateLimit!, this.opts.clock, store, this.opts.buckets);
  }

  /** The limiter of a class, if it has one. */
  limiter(klass: ClassPolicy): ClassLimiter | undefined {
    return this.limiters.size === 0 ? undefined : this.limiters.get(klass.name);
  }

  /** Admission of one request; synchronous unless the limit lives in Redis. */
  admit(ctx: RequestContext, klass: ClassPolicy): AdmitDecision | Promise<AdmitDecision> {
    const l = this.limiter(klass);
    return l ? l.admit(ctx) : ADMIT;
  }

  close(): void {
    for (const l of this.limiters.values()) l.close();
    this.limiters.clear();
    this.stores.clear();
  }
}
