/**
 * The scheduler: strict priority between levels, start-time fair queuing by
 * weight among the classes of one level, and caps that are never exceeded
 * (class concurrency, upstream maxConcurrent with per-class reserves, a
 * global cap). Queues are bounded; the oldest waiters time out; a full global
 * queue sheds the newest waiter of the lowest priority for a higher arrival.
 *
 * Why not p-queue: it has one concurrency counter and one queue, while a
 * request here needs three caps to agree (class, upstream, global), reserved
 * slots, per-class bounds, shedding from the tail and O(1) cancellation.
 * Its queueClass hook only orders tasks; it cannot say "this one may not run yet".
 *
 * Each upstream has its own set of class queues so that a full upstream never
 * blocks a class's requests to another upstream (no head-of-line blocking).
 */
import { ProxyError } from '../errors.js';
import type { Clock, TimerHandle } from '../clock.js';
import type { ClassPolicy, Policy, UpstreamPolicy } from '../policy/types.js';
import { Deque } from './deque.js';
import { ClassState, UpstreamState, type RejectReason, type Slot } from './state.js';
import type { AdaptiveLimitStatus } from './limit/types.js';
import type { LimitSink, LimitTarget, LoadSnapshot } from './limit/index.js';

export type { RejectReason } from './state.js';

/**
 * What a finished upstream exchange tells an adaptive limit (see
 * limit/feedback.ts for how the pipeline derives it): its time to response
 * headers, or that the upstream showed overload.
 */
export type ExchangeSample = { kind: 'latency'; rttMs: number } | { kind: 'dropped' };

/** A request waiting for, or holding, a slot. The pipeline implements it. */
export interface Job {
  /** Called once when the job may proceed; the permit must be released exactly once. */
  grant(permit: Permit): void;
  /** Called once when the job will never get a slot. */
  reject(err: ProxyError, reason: RejectReason): void;
  /** Set by the scheduler while the job is queued. */
  queueEntry?: Entry | undefined;
}

export class Entry {
  cancelled = false;
  constructor(
    readonly job: Job,
    readonly cls: ClassState,
    readonly q: ClassQueue,
    readonly enqueuedAt: number,
    readonly deadline: number,
  ) {}
}

/** The queue of one class at one upstream. */
class ClassQueue {
  readonly items = new Deque<Entry>();
  live = 0;
  /** Requests of this class in flight to this upstream. */
  inFlight = 0;
  /** Start-time fair queuing tag: virtual time at which this class is next due. */
  vt = 0;
  timer: TimerHandle | undefined;
  /** When `timer` fires (clock ms). */
  timerAt = Infinity;
  /** Deadline of the newest entry. */
  lastDeadline = 0;
  /** An entry's deadline is earlier than one ahead of it (a reload shortened queue.timeout): expiry must look past the head. */
  unordered = false;
  /**
   * Standing-queue detector (CoDel): when the oldest waiter was first seen
   * over the target wait (NaN: not over it), and whether that has lasted a
   * whole interval.
   */
  aboveSince = NaN;
  standing = false;
  constructor(
    readonly cls: ClassState,
    readonly up: UpstreamQueues,
  ) {}
}

/** All queues of one upstream, grouped by priority level. */
class UpstreamQueues {
  readonly byClass = new Map<string, ClassQueue>();
  /** Levels in ascending priority number (most important first). */
  levels: { priority: number; queues: ClassQueue[]; vtime: number }[] = [];
  constructor(readonly state: UpstreamState) {}

  queueFor(cls: ClassState): ClassQueue {
    let q = this.byClass.get(cls.policy.name);
    if (!q) {
      q = new ClassQueue(cls, this);
      this.byClass.set(cls.policy.name, q);
      this.relevel();
    }
    return q;
  }

  relevel(): void {
    const levels = new Map<number, ClassQueue[]>();
    for (const q of this.byClass.values()) {
      const p = q.cls.policy.priority;
      let l = levels.get(p);
      if (!l) levels.set(p, (l = []));
      l.push(q);
    }
    const old = new Map(this.levels.map((l) => [l.priority, l.vtime]));
    this.levels = [...levels.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([priority, queues]) => ({ priority, queues, vtime: old.get(priority) ?? 0 }));
  }
}

export class Permit {
  private released = false;
  constructor(
    readonly cls: ClassState,
    readonly up: UpstreamState,
    readonly slot: Slot,
    /** Requests in flight to the upstream when this one started, itself included. */
    readonly inFlightAtStart: number,
    private readonly scheduler: Scheduler,
  ) {}

  /**
   * Gives the slot back. Safe to call more than once; only the first call counts.
   * @param sample what the exchange says about the upstream's load, for an
   *   adaptive limit; omit when it says nothing (client went away, never sent).
   */
  release(sample?: ExchangeSample): void {
    if (this.released) return;
    this.released = true;
    this.scheduler.release(this, sample);
  }
}

export interface SchedulerStatus {
  classes: {
    name: string;
    priority: number;
    weight: number;
    inFlight: number;
    queued: number;
    served: number;
    rejected: Record<RejectReason, number>;
  }[];
  upstreams: {
    name: string;
    inFlight: number;
    /** The cap in force (fixed, adaptive or cluster share, whichever is lowest); null when unlimited. */
    maxConcurrent: number | null;
    queued: number;
    /** Present when maxConcurrent is auto. */
    adaptive?: AdaptiveLimitStatus & { min: number; max: number };
  }[];
  inFlight: number;
  queued: number;
}

export class Scheduler implements LimitSink {
  private readonly classes = new Map<string, ClassState>();
  private readonly upstreams = new Map<string, UpstreamQueues>();
  private inFlight = 0;
  private queued = 0;
  private maxConcurrent = Infinity;
  /** limits.maxConcurrent of the policy; `maxConcurrent` is this or a cap source's value. */
  private policyMaxConcurrent = Infinity;
  private globalLimit: number | undefined = undefined;
  private maxQueued = Infinity;

  constructor(
    policy: Policy,
    private readonly clock: Clock,
  ) {
    this.update(policy);
  }

  /**
   * Applies a new policy. Classes and upstreams that still exist keep their
   * counters and queues; queued requests keep the deadline they were given.
   */
  update(policy: Policy): void {
    this.policyMaxConcurrent = policy.limits.maxConcurrent;
    this.maxConcurrent = this.globalLimit ?? this.policyMaxConcurrent;
    this.maxQueued = policy.limits.maxQueued;
    for (const k of policy.classes) {
      const s = this.classes.get(k.name);
      if (s) s.policy = k;
      else this.classes.set(k.name, new ClassState(k));
    }
    const reserves = new Map(policy.classes.filter((k) => k.reserve > 0).map((k) => [k.name, k.reserve]));
    const now = this.clock.now();
    for (const u of policy.upstreams.values()) {
      const s = this.upstreams.get(u.name);
      if (s) {
        s.state.configure(u, reserves, now);
        s.relevel();
      } else {
        this.upstreams.set(u.name, new UpstreamQueues(new UpstreamState(u, reserves, now)));
      }
    }
    for (const u of this.upstreams.values()) this.dispatch(u);
  }

  /**
   * Replaces one cap with a value from a cap source (cluster share, adaptive
   * limit); undefined restores the policy's. Queued work that now fits starts
   * at once; lowering a cap never stops work already in flight. Unknown names
   * are ignored (the policy may have changed meanwhile).
   */
  setLimit(target: LimitTarget, value: number | undefined): void {
    switch (target.kind) {
      case 'global':
        this.globalLimit = value;
        this.maxConcurrent = value ?? this.policyMaxConcurrent;
        break;
      case 'class': {
        const c = this.classes.get(target.class);
        if (c) c.concurrencyLimit = value;
        break;
      }
      case 'upstream': {
        const u = this.upstreams.get(target.upstream);
        if (!u) break;
        u.state.sharedLimit = value;
        u.state.recompute();
        break;
      }
      case 'reserve': {
        const u = this.upstreams.get(target.upstream);
        if (!u) break;
        if (value === undefined) u.state.reserveLimit.delete(target.class);
        else u.state.reserveLimit.set(target.class, value);
        u.state.recompute();
        break;
      }
    }
    for (const u of this.upstreams.values()) this.dispatch(u);
  }

  /** In flight and queued per class, overall and per upstream (for cap sources). */
  load(): LoadSnapshot {
    const classes = [...this.classes.values()].map((c) => ({
      name: c.policy.name,
      priority: c.policy.priority,
      weight: c.policy.weight,
      inFlight: c.inFlight,
      queued: c.queued,
    }));
    const upstreams = [...this.upstreams.values()].map((u) => ({
      name: u.state.policy.name,
      sharedInUse: u.state.sharedInUse,
      classes: [...u.byClass.values()].map((q) => ({
        name: q.cls.policy.name,
        priority: q.cls.policy.priority,
        weight: q.cls.policy.weight,
        inFlight: q.inFlight,
        queued: q.live,
        reserved: u.state.reservedInUse(q.cls.policy.name),
      })),
    }));
    return { inFlight: this.inFlight, classes, upstreams };
  }

  classState(name: string): ClassState | undefined {
    return this.classes.get(name);
  }

  /** Grants at once when a slot is free, else queues (or rejects when it cannot). */
  submit(job: Job, klass: ClassPolicy, upstream: UpstreamPolicy): void {
    const cls = this.classes.get(klass.name)!;
    const uq = this.upstreams.get(upstream.name)!;
    const q = uq.queueFor(cls);
    if (q.live === 0 && this.inFlight < this.maxConcurrent && cls.hasRoom) {
      const slot = uq.state.slotFor(cls);
      if (slot) {
        q.inFlight++;
        this.start(job, cls, uq.state, slot);
        return;
      }
    }
    this.enqueue(job, cls, q);
  }

  /** Removes a queued job (client went away). No callback is made. */
  cancel(job: Job): void {
    const e = job.queueEntry;
    if (!e || e.cancelled) return;
    this.unlink(e);
  }

  /**
   * Caps an upstream from outside (a cluster lease share): its cap in force
   * becomes min(configured or adaptive limit, n). `undefined` lifts the cap.
   * When the cap rises, waiters are started at once; when it falls, requests
   * in flight finish and no new ones start until in flight is below it.
   * Unknown upstream names are ignored (the policy may have dropped them).
   */
  setUpstreamLimit(name: string, n: number | undefined): void {
    const u = this.upstreams.get(name);
    if (!u) return;
    u.state.external = n === undefined ? Infinity : Math.max(0, Math.floor(n));
    if (u.state.recompute()) this.dispatch(u);
  }

  release(p: Permit, sample?: ExchangeSample): void {
    p.cls.inFlight--;
    p.up.give(p.cls);
    this.inFlight--;
    const a = p.up.adaptive;
    if (a && sample) {
      const changed = a.onSample({
        rttMs: sample.kind === 'latency' ? sample.rttMs : 0,
        inFlight: p.inFlightAtStart,
        dropped: sample.kind === 'dropped',
        now: this.clock.now(),
      });
      if (changed) p.up.recompute();
    }
    // The freed class or global slot may unblock waiters at other upstreams too.
    const own = this.upstreams.get(p.up.policy.name);
    const oq = own?.byClass.get(p.cls.policy.name);
    if (oq) oq.inFlight--;
    if (own) this.dispatch(own);
    if (this.queued > 0) for (const u of this.upstreams.values()) if (u !== own) this.dispatch(u);
  }

  /** Rejects everything queued (shutdown). */
  rejectAll(code: 'SHUTTING_DOWN', detail: string): void {
    for (const u of this.upstreams.values()) {
      for (const q of u.byClass.values()) {
        for (let e = q.items.shift(); e; e = q.items.shift()) {
          if (e.cancelled) continue;
          this.unlink(e);
          e.cls.rejected.shutting_down++;
          e.job.reject(rejection(code, detail, { className: e.cls.policy.name, retryAfterMs: 1000 }), 'shutting_down');
        }
      }
    }
  }

  status(): SchedulerStatus {
    const upstreams = [...this.upstreams.values()].map((u) => {
      let queued = 0;
      for (const q of u.byClass.values()) queued += q.live;
      const a = u.state.adaptive;
      const cfg = u.state.policy.adaptive;
      return {
        name: u.state.policy.name,
        inFlight: u.state.inFlight,
        maxConcurrent: Number.isFinite(u.state.limit) ? u.state.limit : null,
        queued,
        ...(a && cfg ? { adaptive: { ...a.status(), min: cfg.min, max: cfg.max } } : {}),
      };
    });
    return {
      classes: [...this.classes.values()].map((c) => ({
        name: c.policy.name,
        priority: c.policy.priority,
        weight: c.policy.weight,
        inFlight: c.inFlight,
        queued: c.queued,
        served: c.served,
        rejected: { ...c.rejected },
      })),
      upstreams,
      inFlight: this.inFlight,
      queued: this.queued,
    };
  }

  // ---- internals ----

  private start(job: Job, cls: ClassState, up: UpstreamState, slot: Slot): void {
    cls.inFlight++;
    cls.served++;
    up.take(cls);
    this.inFlight++;
    job.grant(new Permit(cls, up, slot, up.inFlight, this));
  }

  private retryAfter(cls: ClassState): number {
    return cls.drain.etaMs(cls.queued, this.clock.now(), cls.policy.queue.timeoutMs);
  }

  private reject(job: Job, cls: ClassState, code: 'QUEUE_FULL' | 'SHED' | 'QUEUE_TIMEOUT', reason: RejectReason, detail: string): void {
    cls.rejected[reason]++;
    job.reject(rejection(code, detail, { className: cls.policy.name, retryAfterMs: this.retryAfter(cls) }), reason);
  }

  private enqueue(job: Job, cls: ClassState, q: ClassQueue): void {
    const k = cls.policy;
    if (cls.queued >= k.queue.size) {
      this.reject(job, cls, 'QUEUE_FULL', 'queue_full', `queue of class '${k.name}' is full (${k.queue.size} waiting)`);
      return;
    }
    if (this.queued >= this.maxQueued && !this.shedFor(k.priority)) {
      this.reject(job, cls, 'QUEUE_FULL', 'queue_full', `all queues are full (${this.maxQueued} waiting)`);
      return;
    }
    const now = this.clock.now();
    if (q.live > 0 && k.queue.codel) {
      // A queue starved by higher priorities has no dequeues to be judged at; judge it at arrivals too.
      this.watchStanding(q, now);
      if (q.standing) this.shedStanding(q, now);
    }
    const e = new Entry(job, cls, q, now, now + k.queue.timeoutMs);
    if (q.live === 0) {
      const level = q.up.levels.find((l) => l.priority === k.priority);
      // A class that was idle rejoins at the current virtual time: it cannot bank credit while idle.
      if (level) q.vt = Math.max(q.vt, level.vtime);
    }
    if (q.live > 0 && e.deadline < q.lastDeadline) q.unordered = true;
    q.lastDeadline = e.deadline;
    q.items.push(e);
    q.live++;
    cls.queued++;
    this.queued++;
    job.queueEntry = e;
    if (!q.timer) this.armTimer(q, e.deadline - now);
    else if (e.deadline < q.timerAt) {
      q.timer.cancel();
      this.armTimer(q, e.deadline - now);
    }
  }

  /** Evicts the newest waiter of the lowest priority below `priority`. */
  private shedFor(priority: number): boolean {
    let victim: ClassQueue | undefined;
    for (const u of this.upstreams.values()) {
      for (let i = u.levels.length - 1; i >= 0; i--) {
        const l = u.levels[i]!;
        if (l.priority <= priority) break;
        if (victim && l.priority < victim.cls.policy.priority) break;
        for (const q of l.queues) {
          if (q.live === 0) continue;
          if (!victim || l.priority > victim.cls.policy.priority || q.live > victim.live) victim = q;
        }
      }
    }
    if (!victim) return false;
    for (let e = victim.items.pop(); e; e = victim.items.pop()) {
      if (e.cancelled) continue;
      this.unlink(e);
      this.reject(e.job, e.cls, 'SHED', 'shed', `shed from class '${e.cls.policy.name}' for a higher-priority request`);
      return true;
    }
    return false;
  }

  private unlink(e: Entry): void {
    e.cancelled = true;
    e.q.live--;
    e.cls.queued--;
    this.queued--;
    e.job.queueEntry = undefined;
    // Cancelled entries are skipped lazily; an empty queue drops them all at once.
    if (e.q.live === 0) {
      e.q.items.clear();
      e.q.timer?.cancel();
      e.q.timer = undefined;
      e.q.unordered = false;
      e.q.lastDeadline = 0;
      e.q.aboveSince = NaN;
      e.q.standing = false;
    }
  }

  private armTimer(q: ClassQueue, ms: number): void {
    q.timerAt = this.clock.now() + Math.max(0, ms);
    q.timer = this.clock.setTimer(() => this.expire(q), Math.max(0, ms));
  }

  /**
   * Expiry past the head, for a queue whose deadlines are out of order: every
   * live entry past its deadline is rejected (FIFO order of the rest is kept),
   * and the timer is armed for the earliest deadline left. O(queue length),
   * only after a reload shortened the class's queue timeout.
   */
  private expireUnordered(q: ClassQueue, now: number): void {
    const due: Entry[] = [];
    let next = Infinity;
    for (const e of q.items) {
      if (e.cancelled) continue;
      if (e.deadline <= now) due.push(e);
      else if (e.deadline < next) next = e.deadline;
    }
    for (const e of due) {
      this.unlink(e);
      this.timeOut(e, now);
    }
    if (q.live > 0 && next !== Infinity && !q.timer) this.armTimer(q, next - now);
  }

  private expire(q: ClassQueue): void {
    q.timer = undefined;
    const now = this.clock.now();
    for (let e = q.items.peek(); e; e = q.items.peek()) {
      if (e.cancelled) {
        q.items.shift();
        continue;
      }
      if (e.deadline > now) {
        if (q.unordered) this.expireUnordered(q, now);
        else this.armTimer(q, e.deadline - now);
        return;
      }
      q.items.shift();
      this.unlink(e);
      this.timeOut(e, now);
    }
  }

  /** Rejects an unlinked entry whose queue timeout has passed. */
  private timeOut(e: Entry, now: number): void {
    const waited = Math.round(now - e.enqueuedAt);
    this.reject(e.job, e.cls, 'QUEUE_TIMEOUT', 'queue_timeout', `waited ${waited} ms in class '${e.cls.policy.name}' (timeout ${Math.round(e.deadline - e.enqueuedAt)} ms)`);
  }

  private dispatch(u: UpstreamQueues): void {
    while (this.queued > 0 && this.inFlight < this.maxConcurrent) {
      const q = this.pick(u);
      if (!q) return;
      const now = this.clock.now();
      const qp = q.cls.policy.queue;
      let e: Entry | undefined;
      if (qp.codel || qp.lifo === 'adaptive') {
        this.watchStanding(q, now);
        if (q.standing && qp.codel) {
          this.shedStanding(q, now);
          if (q.live === 0) continue;
        }
        if (q.standing && qp.lifo === 'adaptive') {
          // Adaptive LIFO: the newest waiter is the one most likely still wanted.
          e = q.items.pop();
          while (e && e.cancelled) e = q.items.pop();
        }
      }
      if (!e) {
        e = q.items.shift();
        while (e && e.cancelled) e = q.items.shift();
      }
      if (!e) continue;
      this.unlink(e);
      if (e.deadline <= now) {
        // Past its queue timeout, its timer not yet run (a busy event loop fires timers late):
        // it times out now rather than start late. The slot goes to the next waiter, and the
        // class is not charged a turn for it (pick advanced its virtual time).
        q.vt -= 1 / q.cls.policy.weight;
        this.timeOut(e, now);
        if (q.live > 0 && !q.timer) this.armTimer(q, q.items.peek()!.deadline - now);
        continue;
      }
      const slot = u.state.slotFor(q.cls)!;
      if (q.live > 0 && !q.timer) this.armTimer(q, q.items.peek()!.deadline - now);
      q.cls.drain.tick(now);
      q.inFlight++;
      this.start(e.job, q.cls, u.state, slot);
    }
  }

  /**
   * CoDel's standing-queue test, on the oldest live waiter (not the one served:
   * under LIFO that one is young while the queue still stands): standing once
   * the oldest wait has stayed at or above target for a whole interval.
   */
  private watchStanding(q: ClassQueue, now: number): void {
    let head = q.items.peek();
    while (head && head.cancelled) {
      q.items.shift();
      head = q.items.peek();
    }
    const { targetMs, intervalMs } = q.cls.policy.queue.standing;
    if (!head || now - head.enqueuedAt < targetMs) {
      q.aboveSince = NaN;
      q.standing = false;
    } else if (Number.isNaN(q.aboveSince)) q.aboveSince = now;
    else if (now - q.aboveSince >= intervalMs) q.standing = true;
  }

  /** Sheds (503 shed) the waiters of a standing queue that waited longer than the codel target. */
  private shedStanding(q: ClassQueue, now: number): void {
    const target = q.cls.policy.queue.codel!.targetMs;
    for (let e = q.items.peek(); e; e = q.items.peek()) {
      if (!e.cancelled && now - e.enqueuedAt < target) break;
      q.items.shift();
      if (e.cancelled) continue;
      this.unlink(e);
      const waited = Math.round(now - e.enqueuedAt);
      this.reject(e.job, e.cls, 'SHED', 'shed', `standing queue in class '${e.cls.policy.name}': waited ${waited} ms, over the ${target} ms target`);
    }
  }

  /** The next queue to serve: first level with an eligible backlog, smallest virtual time in it. */
  private pick(u: UpstreamQueues): ClassQueue | undefined {
    for (const l of u.levels) {
      let best: ClassQueue | undefined;
      for (const q of l.queues) {
        if (q.live === 0 || !q.cls.hasRoom || u.state.slotFor(q.cls) === undefined) continue;
        if (!best || q.vt < best.vt) best = q;
      }
      if (best) {
        l.vtime = best.vt;
        best.vt += 1 / best.cls.policy.weight;
        return best;
      }
    }
    return undefined;
  }
}

/**
 * A scheduler rejection is an expected outcome, not a fault: it carries no
 * stack trace. Capturing one costs 10-20 µs per rejected request (measured
 * with Node 20), which under heavy overload is most of what a rejection costs.
 */
function rejection(code: ConstructorParameters<typeof ProxyError>[0], detail: string, opts: ConstructorParameters<typeof ProxyError>[2]): ProxyError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new ProxyError(code, detail, opts);
  } finally {
    Error.stackTraceLimit = limit;
  }
}
