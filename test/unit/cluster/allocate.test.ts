import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from '../../helpers/redis.js';
import { renew, targets, type PoolTable } from '../../../src/cluster/allocate.js';
import { RENEW_SCRIPT } from '../../../src/cluster/lua.js';
import { encodeDemand } from '../../../src/cluster/store.js';
import { IpcAllocator } from '../../../src/cluster/ipc.js';
import type { LevelDemand } from '../../../src/schedule/limit/index.js';

let redis: RunningRedis;
let client: Redis;

before(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
});

after(async () => {
  client?.disconnect();
  await redis?.stop();
});

const d = (priority: number, count: number, weight = 1): LevelDemand => ({ priority, count, weighted: count * weight });

test('targets: strict priority first, then weights within a priority, then the idle rest evenly', () => {
  // Premium (0) on c takes what it asks; free (1) on a and b share the rest equally.
  assert.deepEqual(targets(8, [{ demand: [d(1, 40)] }, { demand: [d(1, 40)] }, { demand: [d(0, 3)] }]), [3, 2, 3]);
  // Weight 3 vs 1 within one priority.
  assert.deepEqual(targets(8, [{ demand: [d(0, 20, 3)] }, { demand: [d(0, 20, 1)] }]), [6, 2]);
  // All load on one member: it gets everything; idle ones nothing.
  assert.deepEqual(targets(8, [{ demand: [d(1, 40)] }, { demand: [] }, { demand: [] }]), [8, 0, 0]);
  // Nobody asks: split evenly.
  assert.deepEqual(targets(8, [{ demand: [] }, { demand: [] }, { demand: [] }]), [3, 3, 2]);
  // Small demand is met exactly, the rest split evenly as headroom.
  assert.deepEqual(targets(10, [{ demand: [d(0, 2)] }, { demand: [d(0, 2)] }]), [5, 5]);
});

test('a share moves only after its holder released it: the sum of reservations never exceeds the cap', () => {
  const t: PoolTable = { members: new Map(), bornAt: undefined, seen: 0 };
  const cap = 8;
  let now = 0;
  // a holds everything.
  let ra = renew(t, { id: 'a', cap, limit: 0, held: 0, demand: [d(1, 40)], seen: 0 }, now, 2000);
  assert.equal(ra.grant, 8);
  // b arrives with premium demand: nothing is free yet.
  let rb = renew(t, { id: 'b', cap, limit: 0, held: 0, demand: [d(0, 4)], seen: 0 }, (now += 10), 2000);
  assert.equal(rb.grant, 0);
  // a renews while holding 8: its grant shrinks to 4, but its reservation stays 8 (limit 8, held 8).
  ra = renew(t, { id: 'a', cap, limit: 8, held: 8, demand: [d(1, 40)], seen: 0 }, (now += 10), 2000);
  assert.equal(ra.grant, 4);
  rb = renew(t, { id: 'b', cap, limit: 0, held: 0, demand: [d(0, 4)], seen: 0 }, (now += 10), 2000);
  assert.equal(rb.grant, 0, 'a still may hold 8');
  // a applied 4 and its in-flight drained to 5: 3 can move.
  renew(t, { id: 'a', cap, limit: 4, held: 5, demand: [d(1, 40)], seen: 0 }, (now += 10), 2000);
  rb = renew(t, { id: 'b', cap, limit: 0, held: 0, demand: [d(0, 4)], seen: 0 }, (now += 10), 2000);
  assert.equal(rb.grant, 3);
  renew(t, { id: 'a', cap, limit: 4, held: 4, demand: [d(1, 40)], seen: 0 }, (now += 10), 2000);
  const lastA = now;
  rb = renew(t, { id: 'b', cap, limit: 3, held: 3, demand: [d(0, 4)], seen: 0 }, (now += 10), 2000);
  assert.equal(rb.grant, 4);
  // a stops renewing: its reservation lasts until its TTL, never less.
  rb = renew(t, { id: 'b', cap, limit: 4, held: 4, demand: [d(0, 40)], seen: 0 }, lastA + 1999, 2000);
  assert.equal(rb.grant, 4);
  rb = renew(t, { id: 'b', cap, limit: 4, held: 4, demand: [d(0, 40)], seen: 0 }, lastA + 2000, 2000);
  assert.equal(rb.grant, 8);
});

test('warm-up: members seen before a store restart or a general outage keep a static share set aside until they renew or a TTL passes', () => {
  const t: PoolTable = { members: new Map(), bornAt: undefined, seen: 0 };
  const r1 = renew(t, { id: 'a', cap: 8, limit: 2, held: 2, demand: [d(0, 40)], seen: 3 }, 1000, 2000);
  assert.equal(r1.grant, 4, '8 minus 2 ghosts × 2');
  for (const at of [1500, 2000, 2500]) renew(t, { id: 'a', cap: 8, limit: 4, held: 4, demand: [d(0, 40)], seen: 3 }, at, 2000);
  const r2 = renew(t, { id: 'a', cap: 8, limit: 4, held: 4, demand: [d(0, 40)], seen: 3 }, 3000, 2000);
  assert.equal(r2.grant, 8, 'after one TTL of renewals the ghosts are gone');
  // Nobody renewed for a whole TTL (everyone was cut off): a new warm-up.
  const r3 = renew(t, { id: 'a', cap: 8, limit: 4, held: 4, demand: [d(0, 40)], seen: 3 }, 5000, 2000);
  assert.equal(r3.grant, 4, 'ghosts again');
});

test('the Lua script and the TypeScript allocator agree on random renewals', async () => {
  const ids = ['a', 'b', 'c', 'd'];
  let seed = 42;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  await client.flushall();
  const ipc = new IpcAllocator(() => 0);
  // Both see the same sequence; the IPC side runs on a clock that only the ordering matters for (no expiry here).
  for (let step = 0; step < 300; step++) {
    const id = ids[rnd(ids.length)]!;
    const levels: LevelDemand[] = [];
    for (const p of [0, 1, 2]) if (rnd(3) === 0) levels.push(d(p, rnd(30), 1 + rnd(4)));
    const cap = 13;
    const limit = rnd(9);
    const held = rnd(limit + 1);
    const report = { member: id, ttlMs: 60_000, seen: 0, config: [['upstreams[x].maxConcurrent', '13']] as [string, string][], pools: [{ id: 'p', cap, limit, held, demand: levels }] };
    const ts = ipc.renew(report);
    const args: (string | number)[] = [id, 60_000, 0, 1, 'upstreams[x].maxConcurrent', '13', cap, limit, held, encodeDemand(levels)];
    const lua = (await client.eval(RENEW_SCRIPT, 2, 'cfg', 'pool:p', ...args)) as (string | number)[];
    assert.equal(ts.kind, 'ok');
    if (ts.kind !== 'ok') return;
    assert.deepEqual([lua[1], lua[2]], [ts.pools[0]!.grant, ts.pools[0]!.members], `step ${step}: ${JSON.stringify(report.pools)}`);
  }
});

test('the Lua script refuses a member whose caps differ, naming the policy key', async () => {
  await client.flushall();
  const ok = (await client.eval(RENEW_SCRIPT, 2, 'cfg', 'pool:p', 'a', 2000, 0, 1, 'upstreams[app].maxConcurrent', '8', 8, 0, 0, '')) as unknown[];
  assert.equal(ok[0], 'ok');
  const bad = (await client.eval(RENEW_SCRIPT, 2, 'cfg', 'pool:p', 'b', 2000, 0, 1, 'upstreams[app].maxConcurrent', '10', 10, 0, 0, '')) as unknown[];
  assert.deepEqual(bad, ['mismatch', 'upstreams[app].maxConcurrent', '8', '10']);
});

test('simulation: members with random load, delayed and lost answers never hold more than the cap in flight together', () => {
  let seed = 7;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const cap = 10;
  const ttl = 10_000;
  const table: PoolTable = { members: new Map(), bornAt: undefined, seen: 0 };
  interface M {
    id: string;
    limit: number;
    held: number;
    queued: number;
    prio: number;
    /** A renewal on its way: when the store processes it, when its answer arrives (Infinity: lost). */
    pending?: { report: { limit: number; held: number; count: number }; processAt: number; answerAt: number; grant?: number };
  }
  const ms: M[] = ['a', 'b', 'c', 'd'].map((id, i) => ({ id, limit: 0, held: 0, queued: 0, prio: i % 2 }));
  let maxSeen = 0;
  for (let now = 0; now < 20_000; now++) {
    for (const m of ms) {
      // Arrivals and completions.
      if (rnd(10) === 0) m.queued += 1 + rnd(5);
      if (m.held > 0 && rnd(4) === 0) m.held--;
      // Starts, never above the enforced limit.
      while (m.queued > 0 && m.held < m.limit) {
        m.queued--;
        m.held++;
      }
      const p = m.pending;
      if (p && p.grant === undefined && now >= p.processAt) {
        const r = renew(table, { id: m.id, cap, limit: p.report.limit, held: p.report.held, demand: p.report.count > 0 ? [d(m.prio, p.report.count)] : [], seen: 0 }, now, ttl);
        p.grant = r.grant;
      }
      if (p && p.grant !== undefined && now >= p.answerAt) {
        m.limit = p.grant;
        m.pending = undefined;
      } else if (p && now - p.processAt > 30) {
        // Timed out: the answer is lost (the store may have processed it); the member keeps its limit.
        if (p.grant !== undefined) m.pending = undefined;
      }
      if (!m.pending && rnd(5) === 0) {
        const lost = rnd(8) === 0;
        m.pending = {
          report: { limit: m.limit, held: m.held, count: m.held + m.queued },
          processAt: now + 1 + rnd(10),
          answerAt: lost ? Infinity : now + 11 + rnd(10),
        };
      }
    }
    const total = ms.reduce((n, m) => n + m.held, 0);
    maxSeen = Math.max(maxSeen, total);
    assert.ok(total <= cap, `step ${now}: ${total} in flight (${ms.map((m) => `${m.id}:${m.held}/${m.limit}`).join(' ')})`);
  }
  assert.equal(maxSeen, cap, 'the cap was used in full at some point');
});
