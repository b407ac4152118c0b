/**
 * What computes a cap, apart from what enforces it (Netflix concurrency-limits'
 * `limit/` vs `limiter/`). The scheduler enforces four kinds of cap; by default
 * each is the policy's number. A `CapSource` may replace any of them at run time
 * through the scheduler's `setLimit` (a `LimitSink`), which re-dispatches at once:
 * a raised cap starts queued work, a lowered one only stops new starts (requests
 * already in flight finish; the count drains down to the new cap).
 *
 * Sources: the cluster lease client (src/cluster/lease-client.ts) sets each cap to
 * this instance's share of a cluster-wide cap; an adaptive limit can set an
 * upstream's cap from observed latency.
 */
import type { Policy } from '../../policy/types.js';

/** One cap the scheduler enforces. */
export type LimitTarget =
  /** limits.maxConcurrent: requests in flight over all upstreams. */
  | { readonly kind: 'global' }
  /** The shared part of an upstream's maxConcurrent (maxConcurrent minus every class's reserve). */
  | { readonly kind: 'upstream'; readonly upstream: string }
  /** A class's reserved slots at one upstream. */
  | { readonly kind: 'reserve'; readonly upstream: string; readonly class: string }
  /** A class's concurrency. */
  | { readonly kind: 'class'; readonly class: string };

/** Counts of one class, overall or at one upstream. */
export interface ClassLoad {
  readonly name: string;
  readonly priority: number;
  readonly weight: number;
  readonly inFlight: number;
  readonly queued: number;
}

/** What the scheduler holds and has waiting, for whoever sizes its caps. */
export interface LoadSnapshot {
  readonly inFlight: number;
  readonly classes: readonly ClassLoad[];
  readonly upstreams: readonly {
    readonly name: string;
    /** Shared slots in use. */
    readonly sharedInUse: number;
    /** Per class at this upstream; `reserved` counts the class's reserved slots in use. */
    readonly classes: readonly (ClassLoad & { readonly reserved: number })[];
  }[];
}

/** The scheduler as seen by a cap source. */
export interface LimitSink {
  /** Sets a cap (a whole number ≥ 0); undefined restores the policy's own. Re-dispatches. */
  setLimit(target: LimitTarget, value: number | undefined): void;
  /** Current load, for sizing. O(classes × upstreams). */
  load(): LoadSnapshot;
}

/** Something that sizes caps while it runs. */
export interface CapSource {
  /** A new policy was applied to the scheduler (reload): the source re-derives its caps and sets them again. */
  update(policy: Policy): void;
  /** Stops; caps it set stay as they are (the caller decides). Safe to call more than once. */
  stop(): Promise<void>;
}

/** A cap of the policy that a cluster shares, with the policy keys that make it up (for messages). */
export interface CapPool {
  /** Stable id, also the Redis key suffix: `global`, `upstream:NAME`, `reserve:UPSTREAM:CLASS`, `class:NAME`. */
  readonly id: string;
  readonly target: LimitTarget;
  /** The cap's total over the whole cluster. */
  readonly cap: number;
}

/**
 * Every finite cap of a policy as a pool, plus the policy keys and values whose
 * equality between instances the cluster checks (`configEntries`).
 */
export function capPools(policy: Policy): { pools: CapPool[]; configEntries: [string, string][] } {
  const pools: CapPool[] = [];
  const config: [string, string][] = [];
  if (Number.isFinite(policy.limits.maxConcurrent)) {
    pools.push({ id: 'global', target: { kind: 'global' }, cap: policy.limits.maxConcurrent });
    config.push(['limits.maxConcurrent', String(policy.limits.maxConcurrent)]);
  }
  const reserving = policy.classes.filter((k) => k.reserve > 0);
  for (const k of reserving) config.push([`classes[${k.name}].reserve`, String(k.reserve)]);
  for (const u of policy.upstreams.values()) {
    if (!Number.isFinite(u.maxConcurrent)) continue;
    config.push([`upstreams[${u.name}].maxConcurrent`, String(u.maxConcurrent)]);
    const reserved = reserving.reduce((s, k) => s + k.reserve, 0);
    pools.push({ id: `upstream:${u.name}`, target: { kind: 'upstream', upstream: u.name }, cap: u.maxConcurrent - reserved });
    for (const k of reserving) {
      pools.push({ id: `reserve:${u.name}:${k.name}`, target: { kind: 'reserve', upstream: u.name, class: k.name }, cap: k.reserve });
    }
  }
  for (const k of policy.classes) {
    if (!Number.isFinite(k.concurrency)) continue;
    pools.push({ id: `class:${k.name}`, target: { kind: 'class', class: k.name }, cap: k.concurrency });
    config.push([`classes[${k.name}].concurrency`, String(k.concurrency)]);
  }
  config.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return { pools, configEntries: config };
}

/** Demand of one priority level: requests (in flight + queued) and the same weighted by class weight. */
export interface LevelDemand {
  readonly priority: number;
  readonly count: number;
  readonly weighted: number;
}

/** What a pool's holder uses now (`held`) and wants per priority level (in flight + queued). */
export function poolLoad(pool: CapPool, s: LoadSnapshot): { held: number; demand: LevelDemand[] } {
  const levels = new Map<number, { count: number; weighted: number }>();
  const add = (k: ClassLoad, n: number): void => {
    if (n <= 0) return;
    const l = levels.get(k.priority) ?? { count: 0, weighted: 0 };
    l.count += n;
    l.weighted += n * k.weight;
    levels.set(k.priority, l);
  };
  let held = 0;
  const t = pool.target;
  switch (t.kind) {
    case 'global':
      held = s.inFlight;
      for (const k of s.classes) add(k, k.inFlight + k.queued);
      break;
    case 'class':
      for (const k of s.classes) {
        if (k.name !== t.class) continue;
        held = k.inFlight;
        add(k, k.inFlight + k.queued);
      }
      break;
    case 'upstream': {
      const u = s.upstreams.find((x) => x.name === t.upstream);
      if (!u) break;
      held = u.sharedInUse;
      for (const k of u.classes) add(k, k.inFlight - k.reserved + k.queued);
      break;
    }
    case 'reserve': {
      const u = s.upstreams.find((x) => x.name === t.upstream);
      const k = u?.classes.find((x) => x.name === t.class);
      if (!k) break;
      held = k.reserved;
      add(k, k.reserved + k.queued);
      break;
    }
  }
  const demand = [...levels.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([priority, l]) => ({ priority, count: l.count, weighted: l.weighted }));
  return { held, demand };
}
