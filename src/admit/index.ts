/**
 * The admit stage: per-class rate limits between classification and
 * scheduling. Built from the policy and updated on reload (issue 16.4):
 * - a class whose rate-limit parameters (rate, per, burst, key, ipv6Prefix,
 *   store) did not change keeps its buckets, whatever else changed;
 * - a class whose rate, per or burst changed, with the same key, gets new
 *   buckets carrying each client's fill level over (KeyedBuckets.carryOver:
 *   a client with 30% of its allowance left has 30% of the new burst);
 * - a changed key, ipv6Prefix or store starts from full buckets (the old keys
 *   mean nothing under the new ones). Buckets in Redis are keyed by the
 *   parameters, so a change there starts from full buckets too.
 */
import type { Clock } from '../clock.js';
import type { RequestContext } from '../accept/context.js';
import type { ClassPolicy, Policy } from '../policy/types.js';
import type { Logger } from '../telemetry/log.js';
import { ClassLimiter, ADMIT, type AdmitDecision } from './limiter.js';
import { RedisStore } from './redis-store.js';
import type { KeyedBucketsOptions } from './gcra.js';

export { ClassLimiter, quotaWindow, STORE_CONNECT_WAIT_MS, type AdmitDecision } from './limiter.js';
export { KeyedBuckets, gcraStep, gcraParams, type Take, type GcraParams } from './gcra.js';
export { ipKey, canonicalIp } from './keys.js';
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
      if (old && old.sameAs(k)) {
        old.retarget(k);
        next.set(k.name, old);
        continue;
      }
      const l = this.build(k);
      if (old && old.sameKeys(k)) {
        const n = l.local.carryOver(old.local);
        if (n > 0) this.opts.log.info({ class: k.name, keys: n }, 'rate limit changed: clients keep their share of the allowance');
      }
      next.set(k.name, l);
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

  /**
   * Readiness of the stage (for /readyz): true when every class whose limit is
   * failClosed in Redis has its store connected (once since it was configured).
   * Classes that fall back to local limits never hold readiness back.
   */
  isReady(): boolean {
    for (const l of this.limiters.values()) if (l.store && l.policy.store?.failClosed && !l.store.everConnected) return false;
    return true;
  }

  /** Resolves when `isReady()` (never rejects; may stay pending while Redis is unreachable). */
  get ready(): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const l of this.limiters.values()) if (l.store && l.policy.store?.failClosed && !l.store.everConnected) waits.push(l.store.ready);
    return Promise.all(waits).then(() => undefined);
  }

  /** `ready`, or false after `ms` (on the injected clock). */
  async whenReady(ms: number): Promise<boolean> {
    if (this.isReady()) return true;
    let timer: { cancel(): void } | undefined;
    const timedOut = new Promise<false>((r) => (timer = this.opts.clock.setTimer(() => r(false), ms)));
    const ok = await Promise.race([this.ready.then(() => true as const), timedOut]);
    timer?.cancel();
    return ok;
  }

  close(): void {
    for (const l of this.limiters.values()) l.close();
    this.limiters.clear();
    this.stores.clear();
  }
}
