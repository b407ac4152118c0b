/**
 * The lease client: a CapSource that sets every finite cap of the scheduler to
 * this member's share of the cluster-wide cap, renewed every `intervalMs`
 * (one store round trip for all pools; nothing on the request path).
 *
 * Modes (reported in /status, /metrics and one log line per change):
 *   - joining: before the first answer; every share is 0 (requests queue).
 *   - leased: the last renewal succeeded less than `fallbackAfterMs` ago; the
 *     share is what the store granted.
 *   - fallback: the store is unreachable, slow, or refuses our caps. Shares first
 *     shrink to min(share, static share) — shrinking is always safe — and only
 *     once our lease has surely expired in the store (TTL after the last renewal
 *     that succeeded, measured from when it was sent) do they become the static
 *     share ⌊cap / members last seen⌋ (at least 1; 1 when no member count was
 *     ever known). A renewal that succeeds again rejoins: the store grants from
 *     what we report as our limit, so capacity is never counted twice.
 *
 * Demand reported is the peak over the last few renewals, so that a closed-loop
 * client's pause between two requests does not hand its slot away.
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { Policy } from '../policy/types.js';
import type { Logger } from '../telemetry/log.js';
import { capPools, poolLoad, type CapPool, type CapSource, type LevelDemand, type LimitSink } from '../schedule/limit/index.js';
import { staticShare } from './allocate.js';
import type { LeaseAnswer, LeaseStore } from './store.js';

export type ClusterMode = 'joining' | 'leased' | 'fallback';

export interface LeaseClientOptions {
  store: LeaseStore;
  /** Unique among live members. */
  member: string;
  /** Lease lifetime in the store. */
  ttlMs: number;
  /** Renewal period. */
  intervalMs: number;
  clock: Clock;
  log: Logger;
  sink: LimitSink;
  /** Called with the time a pool's queue waited for a larger share (ms). */
  onShareWait?(poolId: string, ms: number): void;
}

/** Samples of demand kept for the peak (renewals). */
const PEAK_WINDOW = 5;

interface PoolState {
  pool: CapPool;
  /** The share enforced now. */
  limit: number;
  /** Live members at the last renewal (0: never known). */
  members: number;
  held: number;
  history: LevelDemand[][];
  /** Since when work of this pool waits because the share is full; undefined: not waiting. */
  waitingSince: number | undefined;
}

export interface ClusterPoolStatus {
  id: string;
  /** Policy target of the pool: kind plus upstream/class names. */
  kind: CapPool['target']['kind'];
  upstream?: string;
  class?: string;
  /** The cap over the whole cluster. */
  clusterCap: number;
  /** This member's share. */
  share: number;
  inFlight: number;
  instances: number;
  mode: ClusterMode;
}

export interface ClusterStatus {
  store: LeaseStore['kind'];
  member: string;
  mode: ClusterMode;
  renewErrors: number;
  /** Last refusal because caps differ, if any. */
  mismatch?: string;
  pools: ClusterPoolStatus[];
}

export class LeaseClient implements CapSource {
  mode: ClusterMode = 'joining';
  renewErrors = 0;
  private mismatch: string | undefined;
  private pools = new Map<string, PoolState>();
  private config: [string, string][] = [];
  private lastOkSentAt: number | undefined;
  private timer: TimerHandle | undefined;
  private stopped = false;
  /** A leased share was lowered by the last renewal. */
  private shrank = false;
  private running: Promise<void> | undefined;
  private readonly timeoutMs: number;
  private readonly fallbackAfterMs: number;

  constructor(
    policy: Policy,
    private readonly o: LeaseClientOptions,
  ) {
    this.timeoutMs = Math.max(2 * o.intervalMs, 250);
    this.fallbackAfterMs = Math.min(o.ttlMs / 2, Math.max(3 * o.intervalMs, 500));
    this.update(policy);
  }

  get member(): string {
    return this.o.member;
  }

  update(policy: Policy): void {
    const { pools, configEntries } = capPools(policy);
    const next = new Map<string, PoolState>();
    for (const pool of pools) {
      const old = this.pools.get(pool.id);
      const s: PoolState = old
        ? { ...old, pool }
        : { pool, limit: this.mode === 'fallback' && this.lastOkSentAt === undefined ? 1 : 0, members: 0, held: 0, history: [], waitingSince: undefined };
      next.set(pool.id, s);
      this.o.sink.setLimit(pool.target, s.limit);
    }
    for (const [id, s] of this.pools) if (!next.has(id)) this.o.sink.setLimit(s.pool.target, undefined);
    this.pools = next;
    this.config = configEntries;
  }

  /**
   * The first renewal. Resolves to an error message when the cluster runs with
   * other caps (the member must not join); unreachable store: fallback, resolves.
   */
  async join(): Promise<string | undefined> {
    await this.renewOnce();
    if (this.mode !== 'leased' && this.mismatch) return this.mismatch;
    return undefined;
  }

  /** Renews every interval until stop(). */
  start(): void {
    if (this.stopped || this.timer) return;
    const loop = (): void => {
      this.timer = undefined;
      if (this.stopped) return;
      this.running = this.renewOnce().finally(() => {
        this.running = undefined;
        // A share just shrank: report it at once, so that the capacity given back can move
        // one interval sooner (the store counts our old limit until we report the new one).
        const soon = this.shrank;
        this.shrank = false;
        if (!this.stopped) this.timer = this.o.clock.setTimer(loop, soon ? Math.min(5, this.o.intervalMs) : this.o.intervalMs);
      });
    };
    this.timer = this.o.clock.setTimer(loop, this.o.intervalMs);
  }

  /** Stops renewing and gives the shares back (call once in-flight work is done). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.timer?.cancel();
    await this.running;
    await this.o.store.release(this.o.member, [...this.pools.keys()]);
    this.o.store.close();
  }

  status(): ClusterStatus {
    return {
      store: this.o.store.kind,
      member: this.o.member,
      mode: this.mode,
      renewErrors: this.renewErrors,
      ...(this.mismatch ? { mismatch: this.mismatch } : {}),
      pools: [...this.pools.values()].map((s) => {
        const t = s.pool.target;
        return {
          id: s.pool.id,
          kind: t.kind,
          ...('upstream' in t ? { upstream: t.upstream } : {}),
          ...('class' in t ? { class: t.class } : {}),
          clusterCap: s.pool.cap,
          share: s.limit,
          inFlight: s.held,
          instances: s.members,
          mode: this.mode,
        };
      }),
    };
  }

  private async renewOnce(): Promise<void> {
    if (this.pools.size === 0) {
      this.mode = 'leased';
      return;
    }
    const sentAt = this.o.clock.now();
    const snap = this.o.sink.load();
    const states = [...this.pools.values()];
    const report = states.map((s) => {
      const { held, demand } = poolLoad(s.pool, snap);
      s.held = held;
      this.trackWait(s, demand, sentAt);
      s.history.push(demand);
      if (s.history.length > PEAK_WINDOW) s.history.shift();
      // In fallback the share may grow to the static share at any moment: report that much, so
      // that the store counts it even if this renewal lands just before the share grows.
      const limit = this.mode === 'fallback' ? Math.max(s.limit, this.staticShare(s)) : s.limit;
      return { id: s.pool.id, cap: s.pool.cap, limit, held, demand: peak(s.history) };
    });
    const seen = states.reduce((m, s) => Math.max(m, s.members), 0);
    let answer: LeaseAnswer;
    try {
      answer = await this.o.store.renew({ member: this.o.member, ttlMs: this.o.ttlMs, seen, config: this.config, pools: report }, this.timeoutMs);
    } catch (err) {
      this.failed(err as Error);
      return;
    }
    if (this.stopped) return;
    if (answer.kind === 'mismatch') {
      const msg = `cluster: policy key ${answer.key} is ${answer.mine} here but ${answer.cluster} in the cluster; caps must be equal on every instance`;
      if (this.mismatch !== msg) this.o.log.error({ key: answer.key, here: answer.mine, cluster: answer.cluster }, msg);
      this.mismatch = msg;
      this.failed(undefined, true);
      return;
    }
    this.mismatch = undefined;
    if (answer.pools.length !== states.length) {
      this.failed(new Error('lease store answered for another set of pools'));
      return;
    }
    this.lastOkSentAt = sentAt;
    if (this.mode !== 'leased') {
      this.o.log.info({ store: this.o.store.kind, member: this.o.member, members: answer.pools[0]?.members }, this.mode === 'joining' ? 'cluster: joined; caps are shared' : 'cluster: lease store reachable again; leased shares restored');
      this.mode = 'leased';
    }
    answer.pools.forEach((a, i) => {
      const s = states[i]!;
      s.members = a.members;
      if (a.grant < s.limit) this.shrank = true;
      this.apply(s, a.grant);
    });
  }

  private failed(err: Error | undefined, now = false): void {
    if (this.stopped) return;
    this.renewErrors++;
    const t = this.o.clock.now();
    const enter = this.mode === 'joining' || now || this.lastOkSentAt === undefined || t - this.lastOkSentAt > this.fallbackAfterMs;
    if (this.mode !== 'fallback' && enter) {
      this.mode = 'fallback';
      this.o.log.warn(
        { store: this.o.store.kind, member: this.o.member, err: err?.message },
        'cluster: lease store unreachable or refusing; serving on static fallback shares until it is back',
      );
    }
    if (this.mode !== 'fallback') return;
    // Our lease may still count in the store until its TTL: until then only shrink.
    const expired = this.lastOkSentAt === undefined || t >= this.lastOkSentAt + this.o.ttlMs;
    for (const s of this.pools.values()) {
      const share = this.staticShare(s);
      this.apply(s, expired ? share : Math.min(s.limit, share));
    }
  }

  /** ⌊cap / members last seen⌋, at least 1; 1 when no member count was ever known. */
  private staticShare(s: PoolState): number {
    return s.members > 0 ? staticShare(s.pool.cap, s.members) : 1;
  }

  private apply(s: PoolState, limit: number): void {
    if (limit === s.limit) return;
    s.limit = limit;
    this.o.sink.setLimit(s.pool.target, limit);
  }

  /**
   * Share-wait: from when demand first exceeded this member's share while the
   * share was below the cluster's cap, until it no longer does (the share grew,
   * reached the cap, or the demand went away).
   */
  private trackWait(s: PoolState, demand: readonly LevelDemand[], now: number): void {
    const want = demand.reduce((n, d) => n + d.count, 0);
    const starved = want > s.limit && s.limit < s.pool.cap;
    if (starved && s.waitingSince === undefined) s.waitingSince = now;
    else if (!starved && s.waitingSince !== undefined) {
      this.o.onShareWait?.(s.pool.id, now - s.waitingSince);
      s.waitingSince = undefined;
    }
  }
}

/** Per priority level, the highest count (and weighted count) among the samples. */
function peak(history: readonly LevelDemand[][]): LevelDemand[] {
  const m = new Map<number, { count: number; weighted: number }>();
  for (const sample of history) {
    for (const d of sample) {
      const cur = m.get(d.priority);
      if (!cur) m.set(d.priority, { count: d.count, weighted: d.weighted });
      else {
        cur.count = Math.max(cur.count, d.count);
        cur.weighted = Math.max(cur.weighted, d.weighted);
      }
    }
  }
  return [...m.entries()].sort((a, b) => a[0] - b[0]).map(([priority, v]) => ({ priority, count: v.count, weighted: v.weighted }));
}
