/**
 * The lease allocator's rules, in TypeScript: the primary of `--workers` runs
 * them over IPC, and src/cluster/lua.ts is the same algorithm as one Redis Lua
 * script (test/unit/cluster/allocate.test.ts checks that both agree).
 *
 * A pool is one cluster-wide cap. Every member (instance or worker) renews its
 * lease on each pool every `renewInterval`, reporting:
 *   - `limit`: the cap it enforces locally right now (its share as last applied,
 *     or its fallback share),
 *   - `held`: what it has in flight in this pool,
 *   - `demand`: per priority level, in flight + queued (and the same weighted by
 *     class weight).
 * The renewal computes a target for every live member (strict priority first,
 * then water-filling by weighted demand within a level, then the idle rest split
 * evenly) and grants the renewing member
 *     grant = min(target, cap − Σ over other members of max(limit, grant, held))
 * so a member never gets capacity another member may still be using: a share
 * shrinks at its holder's next renewal, the holder stops starting work above it,
 * and only once the holder reports the lower limit (and its held count below it)
 * can the capacity be granted elsewhere. Hence Σ in flight ≤ cap at every moment.
 *
 * A member that stops renewing keeps its reservation until its record expires
 * (`ttl` after its last renewal, on the store's clock), never earlier.
 *
 * Warm-up: a table that is new (first use, or the store restarted and lost it)
 * or that nobody renewed for a whole TTL (every member was cut off from the
 * store) starts a warm-up of one TTL. During it, a static share is set aside for
 * each member that a renewer last knew of (`seen`) but that has not renewed yet,
 * since those may still be serving on fallback shares.
 */
import type { LevelDemand } from '../schedule/limit/index.js';

export interface MemberRecord {
  readonly id: string;
  readonly limit: number;
  readonly held: number;
  readonly grant: number;
  /** Store clock, ms. */
  readonly expiresAt: number;
  readonly demand: readonly LevelDemand[];
}

/** One pool's state as the store keeps it. */
export interface PoolTable {
  readonly members: Map<string, MemberRecord>;
  /** Store clock, ms: start of the current warm-up; undefined until the first renewal. */
  bornAt: number | undefined;
  /** Store clock, ms: the last renewal by any member. */
  lastAt?: number;
  /** Highest member count reported by renewals during warm-up. */
  seen: number;
}

export interface Renewal {
  readonly id: string;
  readonly cap: number;
  readonly limit: number;
  readonly held: number;
  readonly demand: readonly LevelDemand[];
  /** Members this renewer last knew of (0 when it never knew). */
  readonly seen: number;
}

export interface RenewResult {
  /** The renewer's new share of the cap. */
  grant: number;
  /** Live members, the renewer included. */
  members: number;
}

/** Targets of every member (same order as `ms`, which is sorted by id). Σ targets = cap when anyone is live. */
export function targets(cap: number, ms: readonly Pick<MemberRecord, 'demand'>[]): number[] {
  const t = ms.map(() => 0);
  let remaining = cap;
  const prios = [...new Set(ms.flatMap((m) => m.demand.map((d) => d.priority)))].sort((a, b) => a - b);
  for (const p of prios) {
    if (remaining <= 0) break;
    const want = ms.map((m) => m.demand.reduce((s, d) => (d.priority === p ? s + d.count : s), 0));
    const w = ms.map((m) => m.demand.reduce((s, d) => (d.priority === p ? s + d.weighted : s), 0));
    while (remaining > 0) {
      let tw = 0;
      let n = 0;
      for (let i = 0; i < ms.length; i++) if (want[i]! > 0) (tw += w[i]!), n++;
      if (n === 0) break;
      const round = remaining;
      let gave = 0;
      for (let i = 0; i < ms.length; i++) {
        if (want[i]! <= 0) continue;
        let x = Math.floor((round * w[i]!) / tw);
        if (x > want[i]!) x = want[i]!;
        want[i]! -= x;
        t[i]! += x;
        remaining -= x;
        gave += x;
      }
      if (gave === 0) {
        let best = -1;
        for (let i = 0; i < ms.length; i++) if (want[i]! > 0 && (best < 0 || w[i]! > w[best]!)) best = i;
        want[best]!--;
        t[best]!++;
        remaining--;
      }
    }
  }
  // What nobody asks for is split evenly, so that a burst can start before the next renewal.
  if (remaining > 0 && ms.length > 0) {
    const each = Math.floor(remaining / ms.length);
    const extra = remaining - each * ms.length;
    for (let i = 0; i < ms.length; i++) t[i]! += each + (i < extra ? 1 : 0);
  }
  return t;
}

/** A member's reservation: the most it may be using until its next renewal. */
export function reservation(m: Pick<MemberRecord, 'limit' | 'grant' | 'held'>): number {
  return Math.max(m.limit, m.grant, m.held);
}

/** Static share of a cap among `n` members (fallback, warm-up): ⌊cap / n⌋, at least 1. */
export function staticShare(cap: number, n: number): number {
  return Math.max(1, Math.floor(cap / Math.max(1, n)));
}

/** One renewal of one pool at store time `now`. Mutates the table. */
export function renew(table: PoolTable, r: Renewal, now: number, ttlMs: number): RenewResult {
  for (const [id, m] of table.members) if (id === r.id || m.expiresAt <= now) table.members.delete(id);
  if (table.bornAt === undefined || table.lastAt === undefined || now - table.lastAt >= ttlMs) {
    table.bornAt = now;
    table.seen = 0;
  }
  table.lastAt = now;
  const warm = now - table.bornAt < ttlMs;
  if (warm && r.seen > table.seen) table.seen = r.seen;
  const others = [...table.members.values()];
  const all = [...others, { id: r.id, demand: r.demand }].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const t = targets(r.cap, all);
  const mine = t[all.findIndex((m) => m.id === r.id)]!;
  let used = 0;
  for (const m of others) used += reservation(m);
  const ghosts = warm ? Math.max(0, table.seen - all.length) : 0;
  const ghostShare = ghosts > 0 ? ghosts * staticShare(r.cap, table.seen) : 0;
  const grant = Math.max(0, Math.min(mine, r.cap - used - ghostShare));
  table.members.set(r.id, { id: r.id, limit: r.limit, held: r.held, grant, expiresAt: now + ttlMs, demand: r.demand });
  return { grant, members: all.length };
}
