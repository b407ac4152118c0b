/**
 * Issue 16 item 9: within a class (at one upstream), requests are served in
 * arrival order whatever happens to the waiters around them: cancels, queue
 * timeouts, sheds, releases, reloads. A model-based property test on the
 * scheduler's public API (submit, cancel, Permit.release, update) with a fixed seed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FakeClock } from '../../../src/clock.js';
import { parsePolicy, formatIssue } from '../../../src/policy/load.js';
import type { Policy } from '../../../src/policy/types.js';
import { Scheduler, type Job, type Permit, type RejectReason } from '../../../src/schedule/scheduler.js';
import type { ProxyError } from '../../../src/errors.js';

function policy(timeout: string): Policy {
  const r = parsePolicy(
    `upstreams:
  - { name: u1, targets: [http://127.0.0.1:1], maxConcurrent: 2 }
  - { name: u2, targets: [http://127.0.0.1:2], maxConcurrent: 3 }
routes:
  - { match: { pathPrefix: / }, upstream: u1 }
  - { match: { pathPrefix: /b }, upstream: u2 }
limits: { maxQueued: 9 }
classes:
  - { name: a, priority: 0, concurrency: 2, queue: { size: 4, timeout: ${timeout} } }
  - { name: b, priority: 1, weight: 1, queue: { size: 5, timeout: 300ms } }
  - { name: c, priority: 1, weight: 3, reserve: 1, queue: { size: 5, timeout: 200ms } }
defaultClass: c
`,
    't.yaml',
  );
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
  return r.policy;
}

type State = 'waiting' | 'granted' | 'rejected' | 'cancelled' | 'released';

class ModelJob implements Job {
  queueEntry: Job['queueEntry'];
  permit: Permit | undefined;
  state: State = 'waiting';
  reason: RejectReason | undefined;
  constructor(
    readonly seq: number,
    readonly lane: string,
    private readonly world: World,
    /** When a wait that began now must end at the latest (the class's queue timeout at arrival). */
    readonly deadline: number,
  ) {}
  grant(p: Permit): void {
    assert.equal(this.state, 'waiting', `job ${this.seq} granted while ${this.state}`);
    // FIFO: nobody of my lane who arrived before me may still be waiting.
    for (const o of this.world.jobs) {
      if (o.lane === this.lane && o.seq < this.seq && o.state === 'waiting') {
        throw new Error(`order broken in ${this.lane}: job ${this.seq} granted while job ${o.seq} still waits`);
      }
    }
    this.permit = p;
    this.state = 'granted';
    this.world.grants++;
  }
  reject(_err: ProxyError, reason: RejectReason): void {
    assert.equal(this.state, 'waiting', `job ${this.seq} rejected while ${this.state}`);
    this.state = 'rejected';
    this.reason = reason;
    this.world.rejects[reason] = (this.world.rejects[reason] ?? 0) + 1;
  }
}

interface World {
  jobs: ModelJob[];
  grants: number;
  rejects: Record<string, number>;
  cancels: number;
}

const Cmd = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ kind: fc.constant('submit' as const), cls: fc.constantFrom('a', 'b', 'c'), up: fc.constantFrom('u1', 'u2'), n: fc.integer({ min: 1, max: 4 }) }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 250 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reload' as const), timeout: fc.constantFrom('100ms', '400ms', '1s') }) },
);

test('property: FIFO within a class at an upstream under random cancels, timeouts, sheds, releases and reloads (seed 16)', () => {
  const totals = { runs: 0, jobs: 0, grants: 0, cancels: 0, rejects: {} as Record<string, number> };
  fc.assert(
    fc.property(fc.array(Cmd, { minLength: 1, maxLength: 120 }), (cmds) => {
      const clock = new FakeClock();
      let p = policy('250ms');
      const s = new Scheduler(p, clock);
      const w: World = { jobs: [], grants: 0, rejects: {}, cancels: 0 };
      const live = (st: State): ModelJob[] => w.jobs.filter((j) => j.state === st);
      for (const c of cmds) {
        if (c.kind === 'submit') {
          for (let i = 0; i < c.n; i++) {
            const klass = p.classes.find((k) => k.name === c.cls)!;
            const job = new ModelJob(w.jobs.length, `${c.cls}@${c.up}`, w, clock.now() + klass.queue.timeoutMs);
            w.jobs.push(job);
            s.submit(job, p.classes.find((k) => k.name === c.cls)!, p.upstreams.get(c.up)!);
          }
        } else if (c.kind === 'cancel') {
          const waiting = live('waiting');
          if (waiting.length === 0) continue;
          const j = waiting[c.pick % waiting.length]!;
          s.cancel(j);
          j.state = 'cancelled';
          w.cancels++;
        } else if (c.kind === 'release') {
          const held = live('granted');
          if (held.length === 0) continue;
          const j = held[c.pick % held.length]!;
          j.state = 'released';
          j.permit!.release();
        } else if (c.kind === 'advance') clock.advance(c.ms);
        else {
          p = policy(c.timeout);
          s.update(p);
        }
        for (const j of live('waiting')) {
          if (clock.now() > j.deadline) throw new Error(`job ${j.seq} (${j.lane}) still waits ${clock.now() - j.deadline} ms past its queue timeout`);
        }
        const st = s.status();
        assert.equal(st.queued, live('waiting').length, 'queued count matches the waiters');
        assert.equal(st.inFlight, live('granted').length, 'in-flight count matches the holders');
      }
      // Drain: release everything, let every timeout pass; nothing may stay behind.
      for (let guard = 0; guard < 1000 && (live('granted').length > 0 || live('waiting').length > 0); guard++) {
        for (const j of live('granted')) {
          j.state = 'released';
          j.permit!.release();
        }
        clock.advance(50);
      }
      const st = s.status();
      assert.equal(st.queued, 0);
      assert.equal(st.inFlight, 0);
      assert.ok(st.classes.every((k) => k.queued === 0 && k.inFlight === 0));
      totals.runs++;
      totals.jobs += w.jobs.length;
      totals.grants += w.grants;
      totals.cancels += w.cancels;
      for (const [r, n] of Object.entries(w.rejects)) totals.rejects[r] = (totals.rejects[r] ?? 0) + n;
      return true;
    }),
    { seed: 16, numRuns: 400 },
  );
  console.log(`queue order property: ${JSON.stringify(totals)}`);
  // The run must have exercised what it claims to.
  assert.ok(totals.cancels > 0 && (totals.rejects.queue_timeout ?? 0) > 0 && (totals.rejects.shed ?? 0) > 0 && (totals.rejects.queue_full ?? 0) > 0);
});

test('a waiter times out at its own deadline even when one ahead of it has a later one (timeout shortened by a reload)', () => {
  const clock = new FakeClock();
  const w: World = { jobs: [], grants: 0, rejects: {}, cancels: 0 };
  let p = policy('1s');
  const s = new Scheduler(p, clock);
  const a = (): [Policy['classes'][number], Policy['upstreams'] extends ReadonlyMap<string, infer U> ? U : never] => [
    p.classes.find((k) => k.name === 'a')!,
    p.upstreams.get('u1')!,
  ];
  const jobs: ModelJob[] = [];
  for (let i = 0; i < 3; i++) {
    const j = new ModelJob(i, 'a@u1', w, clock.now() + 1000);
    w.jobs.push(j);
    jobs.push(j);
    s.submit(j, ...a());
  }
  // u1 has one shared slot (maxConcurrent 2, one reserved for c): one granted, two waiting.
  assert.deepEqual(jobs.map((j) => j.state), ['granted', 'waiting', 'waiting']);
  p = policy('100ms');
  s.update(p);
  const late = new ModelJob(3, 'a@u1', w, clock.now() + 100);
  w.jobs.push(late);
  s.submit(late, ...a());
  clock.advance(150);
  assert.equal(late.state, 'rejected', 'the 100 ms waiter must not wait for the 1 s one ahead of it');
  assert.equal(late.reason, 'queue_timeout');
  assert.deepEqual([jobs[1]!.state, jobs[2]!.state], ['waiting', 'waiting'], 'the earlier waiters keep their 1 s deadline');
  clock.advance(900);
  assert.deepEqual([jobs[1]!.state, jobs[2]!.state], ['rejected', 'rejected']);
  for (const j of jobs) if (j.state === 'granted') j.permit!.release();
  assert.deepEqual([s.status().queued, s.status().inFlight], [0, 0]);
});
