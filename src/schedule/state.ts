/** Counters and caps of one class and one upstream, shared by every upstream's queues. */
import type { ClassPolicy, UpstreamPolicy } from '../policy/types.js';
import { DrainRate } from './drain-rate.js';

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

export class UpstreamState {
  inFlight = 0;
  sharedInUse = 0;
  /** Slots of `reserve` in use, by class name. */
  readonly reservedInUse = new Map<string, number>();
  /** maxConcurrent minus every class's reserve. */
  sharedCapacity: number;
  /** Set by a cap source (Scheduler.setLimit): replaces sharedCapacity. */
  sharedLimit: number | undefined = undefined;
  /** Set by a cap source: replaces a class's reserve at this upstream, by class name. */
  readonly reserveLimit = new Map<string, number>();

  constructor(
    public policy: UpstreamPolicy,
    reserves: ReadonlyMap<string, number>,
  ) {
    this.sharedCapacity = UpstreamState.shared(policy, reserves);
  }

  static shared(policy: UpstreamPolicy, reserves: ReadonlyMap<string, number>): number {
    let sum = 0;
    for (const r of reserves.values()) sum += r;
    return policy.maxConcurrent - sum;
  }

  /** Which slot a request of this class would take now, if any. */
  slotFor(k: ClassState): 'shared' | 'reserved' | 'unlimited' | undefined {
    if (this.policy.maxConcurrent === Infinity) return 'unlimited';
    if (this.sharedInUse < (this.sharedLimit ?? this.sharedCapacity)) return 'shared';
    const r = this.reserveLimit.get(k.policy.name) ?? k.policy.reserve;
    if (r > 0 && (this.reservedInUse.get(k.policy.name) ?? 0) < r) return 'reserved';
    return undefined;
  }
}
