import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../../src/clock.js';
import { parsePolicy, formatIssue } from '../../../src/policy/load.js';
import type { Policy } from '../../../src/policy/types.js';
import { Scheduler, type Job, type Permit } from '../../../src/schedule/scheduler.js';
import { LeaseClient } from '../../../src/cluster/lease-client.js';
import type { LeaseAnswer, LeaseReport, LeaseStore } from '../../../src/cluster/store.js';
import { silentLogger } from '../../../src/telemetry/log.js';

function policy(yaml: string): Policy {
  const r = parsePolicy(yaml, 't.yaml');
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
  return r.policy;
}

const P = policy(`upstreams:
  - { name: app, targets: [http://127.0.0.1:1], maxConcurrent: 8 }
routes:
  - { upstream: app }
classes:
  - { name: premium, priority: 0, reserve: 2, concurrency: 6 }
  - { name: free, priority: 1 }
defaultClass: free
`);

class Holder implements Job {
  queueEntry: Job['queueEntry'];
  permits: Permit[] = [];
  grant(p: Permit): void {
    this.permits.push(p);
  }
  reject(): void {
    throw new Error('rejected');
  }
}

/** A store whose answers the test decides; fails while `down`. */
class ScriptedStore implements LeaseStore {
  readonly kind = 'redis' as const;
  down = false;
  reports: LeaseReport[] = [];
  grants: Record<string, number> = {};
  members = 2;
  async renew(r: LeaseReport): Promise<LeaseAnswer> {
    this.reports.push(r);
    if (this.down) throw new Error('connection refused');
    return { kind: 'ok', pools: r.pools.map((p) => ({ grant: this.grants[p.id] ?? 0, members: this.members })) };
  }
  async release(): Promise<void> {}
  close(): void {}
}

async function tick(clock: FakeClock, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 10) {
    clock.advance(10);
    await new Promise((r) => setImmediate(r));
  }
}

test('the scheduler enforces shares set at run time: raising starts queued work, lowering stops only new starts', () => {
  const clock = new FakeClock();
  const s = new Scheduler(P, clock);
  const free = P.classes[1]!;
  const up = P.upstreams.get('app')!;
  s.setLimit({ kind: 'upstream', upstream: 'app' }, 2);
  const jobs = Array.from({ length: 5 }, () => new Holder());
  for (const j of jobs) s.submit(j, free, up);
  assert.equal(s.status().inFlight, 2);
  s.setLimit({ kind: 'upstream', upstream: 'app' }, 4);
  assert.equal(s.status().inFlight, 4, 'raised: queued work starts at once');
  s.setLimit({ kind: 'upstream', upstream: 'app' }, 1);
  assert.equal(s.status().inFlight, 4, 'lowered: nothing in flight is stopped');
  for (const j of jobs.slice(0, 4)) j.permits[0]!.release();
  assert.equal(s.status().inFlight, 1, 'drains down to the new share');
  s.setLimit({ kind: 'upstream', upstream: 'app' }, undefined);
  assert.equal(s.status().queued, 0);
  const load = s.load();
  assert.equal(load.upstreams[0]!.classes.find((c) => c.name === 'free')!.inFlight, 1);
});

test('lease client: shares applied from the store; on outage shrink at once, static share only after the TTL; rejoin', async () => {
  const clock = new FakeClock();
  const sched = new Scheduler(P, clock);
  const store = new ScriptedStore();
  store.grants = { 'upstream:app': 5, 'reserve:app:premium': 1, 'class:premium': 1 };
  const lc = new LeaseClient(P, { store, member: 'a', ttlMs: 1000, intervalMs: 100, clock, log: silentLogger, sink: sched });
  assert.equal(lc.mode, 'joining');
  assert.equal(await lc.join(), undefined);
  lc.start();
  assert.equal(lc.mode, 'leased');
  const share = (id: string) => lc.status().pools.find((p) => p.id === id)!.share;
  assert.equal(share('upstream:app'), 5);
  // Load: 7 free requests: 5 start (the share), 2 wait.
  const free = P.classes[1]!;
  const up = P.upstreams.get('app')!;
  const jobs = Array.from({ length: 7 }, () => new Holder());
  for (const j of jobs) sched.submit(j, free, up);
  assert.equal(sched.status().inFlight, 5);
  await tick(clock, 100);
  const last = store.reports.at(-1)!.pools.find((p) => p.id === 'upstream:app')!;
  assert.deepEqual({ limit: last.limit, held: last.held, demand: last.demand }, { limit: 5, held: 5, demand: [{ priority: 1, count: 7, weighted: 7 }] });
  // Outage: static share is ⌊6 / 2⌋ = 3 for the shared pool (cap 8 − reserve 2).
  store.down = true;
  const downAt = clock.now();
  await tick(clock, 700);
  assert.equal(lc.mode, 'fallback');
  assert.equal(share('upstream:app'), 3, 'shrunk to min(share, static share)');
  assert.equal(share('class:premium'), 1, 'never grown before the TTL');
  await tick(clock, 1000 - (clock.now() - downAt) + 150);
  assert.equal(share('reserve:app:premium'), 1, 'static share of a 2-slot reserve among 2 members');
  assert.equal(share('class:premium'), 3, 'after the TTL: ⌊6 / 2⌋');
  assert.ok(lc.renewErrors > 5);
  // Back: the store's grants apply at the next renewal.
  store.down = false;
  store.grants = { 'upstream:app': 6, 'reserve:app:premium': 2, 'class:premium': 6 };
  await tick(clock, 120);
  assert.equal(lc.mode, 'leased');
  assert.equal(share('upstream:app'), 6);
  for (const j of jobs) for (const p of j.permits) p.release();
  await lc.stop();
  assert.equal(sched.status().inFlight, 0);
});

test('lease client: a store that refuses our caps names the key and is not joined', async () => {
  const clock = new FakeClock();
  const sched = new Scheduler(P, clock);
  const store: LeaseStore = {
    kind: 'redis',
    renew: async () => ({ kind: 'mismatch', key: 'upstreams[app].maxConcurrent', cluster: '10', mine: '8' }),
    release: async () => undefined,
    close: () => undefined,
  };
  const lc = new LeaseClient(P, { store, member: 'a', ttlMs: 1000, intervalMs: 100, clock, log: silentLogger, sink: sched });
  assert.equal(await lc.join(), 'cluster: policy key upstreams[app].maxConcurrent is 8 here but 10 in the cluster; caps must be equal on every instance');
  await lc.stop();
});
