/** Counters and caps of one class and one upstream, shared by every upstream's queues. */
import type { ClassPolicy, UpstreamPolicy } from '../policy/types.js';
import { DrainRate } from './drain-rate.js';
import { GradientLimit } from './limit/gradient.js';
import type { AdaptiveLimit } from './limit/types.js';

export type RejectReason = 'queue_full' | 'shed' | 'queue_timeout' | 'rate_limited' | 'shutting_down';

export class ClassState {
  inFlight = 0;
  queued = 0;
  served = 0;
  readonly rejected: Record<RejectReason, number> = {
    queue_full: 0,
    shed: 0,
    queue_timeout: 0,
    rate_limited: 0,
    shutting_down: 0,
  };
  readonly drain = new DrainRate();
  /** Set by a cap source (Scheduler.setLimit): replaces policy.concurrency. */
  concurrencyLimit: number | undefined = undefined;
  constructor(public policy: ClassPolicy) {}

  get hasRoom(): boolean {
    return this.inFlight < (this.concurrencyLimit ?? this.policy.concurrency);
  }
}

export type Slot = 'shared' | 'reserved' | 'unlimited';

/**
 * One upstream's cap and its accounting.
 *
 * The cap in force (`limit`) is the smaller of the base limit (the fixed
 * maxConcurrent, or the adaptive limit) and an external cap (a cluster lease
 * share, set through `Scheduler.setUpstreamLimit`).
 *
 * Reserves are counted per class, not per permit: a class's first `reserve`
 * requests in flight use its reserve, only the ones beyond it use shared
 * slots. Same guarantee as holding slots apart (the class can always get
 * `reserve` slots), but a class's reserve is never idle while the class has
 * that many in flight, so other classes get every shared slot.
 */
export class UpstreamState {
  inFlight = 0;
  /** Requests in flight beyond their class's reserve. */
  sharedInUse = 0;
  /** Requests in flight by class name. */
  readonly byClass = new Map<string, number>();
  /** The cap in force; Infinity: unlimited. */
  limit = Infinity;
  /** Slots not reserved to a class: `limit` minus every class's reserve, or the cluster's share of them. */
  sharedCapacity = Infinity;
  /** External cap on the whole upstream (Scheduler.setUpstreamLimit); Infinity when none. */
  external = Infinity;
  /** Set by a cap source (Scheduler.setLimit, the cluster's share of the shared slots); undefined: none. */
  sharedLimit: number | undefined = undefined;
  /** Set by a cap source (the cluster's share of a class's reserve), by class name: replaces the policy's reserve. */
  readonly reserveLimit = new Map<string, number>();
  adaptive: AdaptiveLimit | undefined;
  /** Reserve by class name, as of the policy in force (a permit's class may have left it). */
  private reserves: ReadonlyMap<string, number> = new Map();

  constructor(
    public policy: UpstreamPolicy,
    reserves: ReadonlyMap<string, number>,
    now: number,
  ) {
    this.configure(policy, reserves, now);
  }

  /** Applies a (new) policy; an unchanged adaptive block keeps its learned limit. */
  configure(policy: UpstreamPolicy, reserves: ReadonlyMap<string, number>, now: number): void {
    const old = this.policy.adaptive;
    this.policy = policy;
    if (!policy.adaptive) this.adaptive = undefined;
    else if (!this.adaptive || !sameKnobs(old, policy.adaptive)) this.adaptive = new GradientLimit(policy.adaptive, now);
    this.reserves = reserves;
    this.recompute();
  }

  /** The reserve of a class at this upstream in force: the cluster's share of it, else the policy's. */
  reserveOf(name: string): number {
    return this.reserveLimit.get(name) ?? this.reserves.get(name) ?? 0;
  }

  /** Requests of a class in flight on its reserve (its first `reserveOf` ones). */
  reservedInUse(name: string): number {
    return Math.min(this.byClass.get(name) ?? 0, this.reserveOf(name));
  }

  /**
   * Recomputes the cap in force and the shared slots in use (reserves may have
   * changed); returns true when the cap rose (waiters may start).
   */
  recompute(): boolean {
    const before = this.limit;
    let reserved = 0;
    for (const name of this.reserves.keys()) reserved += this.reserveOf(name);
    for (const [name, r] of this.reserveLimit) if (!this.reserves.has(name)) reserved += r;
    const base = this.adaptive ? this.adaptive.limit : this.policy.maxConcurrent;
    this.limit = Math.min(base, this.external);
    if (this.sharedLimit !== undefined) this.limit = Math.min(this.limit, this.sharedLimit + reserved);
    this.sharedCapacity = Math.min(this.limit - reserved, this.sharedLimit ?? Infinity);
    let shared = 0;
    for (const [name, n] of this.byClass) shared += Math.max(0, n - this.reserveOf(name));
    this.sharedInUse = shared;
    return this.limit > before;
  }

  /** Which slot a request of this class would take now, if any. */
  slotFor(k: ClassState): Slot | undefined {
    if (this.limit === Infinity) return 'unlimited';
    if (this.inFlight >= this.limit) return undefined;
    const r = this.reserveOf(k.policy.name);
    if (r > 0 && (this.byClass.get(k.policy.name) ?? 0) < r) return 'reserved';
    if (this.sharedInUse < this.sharedCapacity) return 'shared';
    return undefined;
  }

  take(k: ClassState): void {
    const n = this.byClass.get(k.policy.name) ?? 0;
    this.byClass.set(k.policy.name, n + 1);
    if (n >= this.reserveOf(k.policy.name)) this.sharedInUse++;
    this.inFlight++;
  }

  give(k: ClassState): void {
    const n = (this.byClass.get(k.policy.name) ?? 1) - 1;
    this.byClass.set(k.policy.name, n);
    if (n >= this.reserveOf(k.policy.name)) this.sharedInUse--;
    this.inFlight--;
  }
}

function sameKnobs(a: UpstreamPolicy['adaptive'], b: UpstreamPolicy['adaptive']): boolean {
  if (!a || !b) return false;
  return (
    a.min === b.min &&
    a.max === b.max &&
    a.initial === b.initial &&
    a.tolerance === b.tolerance &&
    a.smoothing === b.smoothing &&
    a.windowMs === b.windowMs &&
    a.probeIntervalMs === b.probeIntervalMs
  );
}
