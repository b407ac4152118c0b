import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../../src/clock.js';
import { parsePolicy, formatIssue } from '../../../src/policy/load.js';
import type { Policy } from '../../../src/policy/types.js';
import { Scheduler, type Job, type Permit, type RejectReason } from '../../../src/schedule/scheduler.js';
import type { ProxyError } from '../../../src/errors.js';

function policy(yaml: string): Policy {
  const r = parsePolicy(yaml, 't.yaml');
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
  return r.policy;
}

class TestJob implements Job {
  queueEntry: Job['queueEntry'];
  permit: Permit | undefined;
  error: ProxyError | undefined;
  reason: RejectReason | undefined;
  constructor(readonly name: string, readonly log: string[]) {}
  grant(p: Permit): void {
    assert.equal(this.permit, undefined, 'granted twice');
    this.permit = p;
    this.log.push(this.name);
  }
  released = false;
  get holding(): boolean {
    return this.permit !== undefined && !this.released;
  }
  done(): void {
    this.released = true;
    this.permit!.release();
  }
  reject(err: ProxyError, reason: RejectReason): void {
    assert.equal(this.error, undefined, 'rejected twice');
    this.error = err;
    this.reason = reason;
  }
}

function setup(classesYaml: string, maxConcurrent = 2, extra = '') {
  const p = policy(`upstreams:
  - name: up
    targets: [http://127.0.0.1:1]
    maxConcurrent: ${maxConcurrent}
routes:
  - upstream: up
classes:
${classesYaml}
${extra}`);
  const clock = new FakeClock();
  const s = new Scheduler(p, clock);
  const log: string[] = [];
  const up = p.upstreams.get('up')!;
  const submit = (cls: string, name = cls): TestJob => {
    const j = new TestJob(name, log);
    s.submit(j, p.classes.find((k) => k.name === cls)!, up);
    return j;
  };
  return { p, s, clock, log, submit };
}

const TWO = `  - name: hi
    priority: 0
  - name: lo
    priority: 1
defaultClass: lo`;

test('grants at once while under the cap, queues past it, never exceeds it', () => {
  const { s, submit } = setup(TWO, 2);
  const a = submit('lo', 'a');
  const b = submit('lo', 'b');
  const c = submit('lo', 'c');
  assert.ok(a.permit && b.permit);
  assert.equal(c.permit, undefined);
  assert.equal(s.status().upstreams[0]!.inFlight, 2);
  assert.equal(s.status().classes.find((k) => k.name === 'lo')!.queued, 1);
  a.permit!.release();
  assert.ok(c.permit, 'queued job granted on release');
  assert.equal(s.status().upstreams[0]!.inFlight, 2);
});

test('strict priority: a later high-priority request goes before earlier low ones', () => {
  const { submit, log } = setup(TWO, 1);
  const first = submit('lo', 'first');
  submit('lo', 'lo1');
  submit('lo', 'lo2');
  submit('hi', 'hi1');
  first.permit!.release();
  assert.deepEqual(log, ['first', 'hi1']);
});

test('release is idempotent: a double release does not free two slots', () => {
  const { s, submit } = setup(TWO, 1);
  const a = submit('lo', 'a');
  submit('lo', 'b');
  submit('lo', 'c');
  a.permit!.release();
  a.permit!.release();
  assert.equal(s.status().upstreams[0]!.inFlight, 1);
  assert.equal(s.status().queued, 1);
});

test('weighted fair sharing within a priority level: 3:1 by weight', () => {
  const { submit, log } = setup(
    `  - name: a
    weight: 3
  - name: b
    weight: 1
defaultClass: a`,
    1,
  );
  const jobs: TestJob[] = [submit('a', 'warm')];
  for (let i = 0; i < 400; i++) jobs.push(submit('a'), submit('b'));
  // One slot: release whoever holds it, 400 times.
  for (let i = 0; i < 400; i++) jobs.find((j) => j.holding)!.done();
  const granted = log.slice(1, 401);
  const na = granted.filter((n) => n === 'a').length;
  const nb = granted.filter((n) => n === 'b').length;
  assert.ok(Math.abs(na / nb - 3) < 0.1, `expected 3:1, got ${na}:${nb}`);
});

test('equal priority classes do not starve each other even with a large weight gap', () => {
  const { submit, log } = setup(
    `  - name: big
    weight: 100
  - name: small
    weight: 1
defaultClass: big`,
    1,
  );
  const jobs: TestJob[] = [submit('big', 'warm')];
  for (let i = 0; i < 300; i++) jobs.push(submit('big'));
  for (let i = 0; i < 3; i++) jobs.push(submit('small'));
  for (let i = 0; i < 303; i++) jobs.find((j) => j.holding)!.done();
  assert.equal(log.filter((n) => n === 'small').length, 3);
  assert.ok(log.indexOf('small') < 150, `small first served at ${log.indexOf('small')}`);
});

test('a class at its concurrency cap does not block other classes (work conserving)', () => {
  const { submit } = setup(
    `  - name: hi
    priority: 0
    concurrency: 1
  - name: lo
    priority: 1
defaultClass: lo`,
    4,
  );
  const h1 = submit('hi', 'h1');
  const h2 = submit('hi', 'h2');
  const l1 = submit('lo', 'l1');
  assert.ok(h1.permit);
  assert.equal(h2.permit, undefined, 'class cap of 1 holds h2 back');
  assert.ok(l1.permit, 'lower class uses the free upstream slot');
  h1.done();
  assert.ok(h2.permit);
});

test('reserve: a class gets its held slot while the shared ones are busy', () => {
  const { s, submit } = setup(
    `  - name: premium
    priority: 0
    reserve: 1
  - name: free
    priority: 1
defaultClass: free`,
    3,
  );
  const f1 = submit('free', 'f1');
  const f2 = submit('free', 'f2');
  const f3 = submit('free', 'f3');
  assert.ok(f1.permit && f2.permit);
  assert.equal(f3.permit, undefined, 'free cannot take the reserved slot');
  const p1 = submit('premium', 'p1');
  assert.ok(p1.permit, 'premium starts at once on its reserved slot');
  assert.equal(p1.permit!.slot, 'reserved');
  assert.equal(s.status().upstreams[0]!.inFlight, 3);
  const p2 = submit('premium', 'p2');
  assert.equal(p2.permit, undefined, 'only one reserved slot');
  f1.done();
  assert.ok(p2.permit, 'premium beats queued free to the freed shared slot');
  assert.equal(f3.permit, undefined);
});

test('a full class queue rejects with 503 queue_full and a Retry-After', () => {
  const { s, submit } = setup(
    `  - name: a
    queue: { size: 2, timeout: 5s }
defaultClass: a`,
    1,
  );
  submit('a');
  submit('a');
  submit('a');
  const rejected = submit('a', 'over');
  assert.equal(rejected.reason, 'queue_full');
  assert.equal(rejected.error!.status, 503);
  assert.ok(rejected.error!.retryAfterSeconds()! >= 1);
  assert.equal(s.status().classes[0]!.rejected.queue_full, 1);
});

test('queue timeout: waiters older than the timeout get 503 queue_timeout; younger ones stay', () => {
  const { s, clock, submit } = setup(
    `  - name: a
    queue: { size: 10, timeout: 1s }
defaultClass: a`,
    1,
  );
  submit('a');
  const old = submit('a', 'old');
  clock.advance(600);
  const young = submit('a', 'young');
  clock.advance(500);
  assert.equal(old.reason, 'queue_timeout');
  assert.match(old.error!.message, /waited 1000 ms/);
  assert.equal(young.reason, undefined);
  clock.advance(600);
  assert.equal(young.reason, 'queue_timeout');
  assert.equal(s.status().queued, 0);
});

test('a waiter past its queue timeout is never started, even when its timer has not run yet (busy event loop)', () => {
  // A clock whose timers run only when told: time moves on while the expiry timer is late.
  let now = 0;
  const due: (() => void)[] = [];
  const clock = { now: () => now, setTimer: (fn: () => void) => (due.push(fn), { cancel: () => {} }) };
  const p = policy(`upstreams:
  - name: up
    targets: [http://127.0.0.1:1]
    maxConcurrent: 1
routes:
  - upstream: up
classes:
  - name: a
    queue: { size: 10, timeout: 1s }
defaultClass: a`);
  const s = new Scheduler(p, clock);
  const log: string[] = [];
  const up = p.upstreams.get('up')!;
  const submit = (name: string): TestJob => {
    const j = new TestJob(name, log);
    s.submit(j, p.classes[0]!, up);
    return j;
  };
  const first = submit('first');
  const late = submit('late');
  now = 400;
  const fresh = submit('fresh');
  now = 1200; // late's deadline (1000) passed; fresh's (1400) not
  first.done();
  assert.equal(late.reason, 'queue_timeout');
  assert.match(late.error!.message, /waited 1200 ms .*timeout 1000 ms/);
  assert.equal(late.permit, undefined);
  assert.deepEqual(log, ['first', 'fresh'], 'the slot went to the next waiter in time');
  // The expiry timer, when it finally runs, finds nothing more to do.
  for (const fn of due.splice(0)) fn();
  assert.equal(fresh.reason, undefined);
  assert.equal(s.status().classes[0]!.rejected.queue_timeout, 1);
});

test('cancel: a waiter that left is never granted and frees its queue place', () => {
  const { s, submit, log } = setup(TWO, 1);
  const a = submit('lo', 'a');
  const gone = submit('lo', 'gone');
  const next = submit('lo', 'next');
  s.cancel(gone);
  assert.equal(s.status().queued, 1);
  a.done();
  assert.deepEqual(log, ['a', 'next']);
  assert.equal(gone.permit, undefined);
  assert.equal(gone.error, undefined);
  void next;
});

test('shedding: a full global queue evicts the newest lowest-priority waiter for a higher arrival', () => {
  const { s, submit } = setup(
    `  - name: gold
    priority: 0
  - name: silver
    priority: 1
  - name: bronze
    priority: 2
defaultClass: bronze`,
    1,
    'limits: { maxQueued: 3 }',
  );
  submit('bronze', 'running');
  const s1 = submit('silver', 's1');
  const b1 = submit('bronze', 'b1');
  const b2 = submit('bronze', 'b2');
  const g1 = submit('gold', 'g1');
  assert.equal(b2.reason, 'shed', 'newest of the lowest priority is shed');
  assert.equal(b2.error!.status, 503);
  assert.equal(b1.reason, undefined);
  assert.equal(g1.reason, undefined);
  const b3 = submit('bronze', 'b3');
  assert.equal(b3.reason, 'queue_full', 'an arrival of the lowest priority cannot shed anyone');
  assert.equal(s1.reason, undefined);
  assert.equal(s.status().classes.find((k) => k.name === 'bronze')!.rejected.shed, 1);
});

test('Retry-After follows the observed drain rate', () => {
  const { clock, submit } = setup(
    `  - name: a
    queue: { size: 100, timeout: 60s }
defaultClass: a`,
    1,
  );
  const jobs: TestJob[] = [submit('a')];
  for (let i = 0; i < 60; i++) jobs.push(submit('a'));
  // Drain 50 at 10 per second (5 s), leaving 10 waiting.
  for (let i = 0; i < 50; i++) {
    clock.advance(100);
    jobs.find((j) => j.holding)!.done();
  }
  for (let i = 0; i < 90; i++) jobs.push(submit('a'));
  const over = submit('a', 'over');
  assert.equal(over.reason, 'queue_full');
  // 100 waiting, drained at ~8-10/s by the decayed estimate: about 10-13 s.
  const secs = over.error!.retryAfterSeconds()!;
  assert.ok(secs >= 8 && secs <= 16, `retry-after ${secs}s for 100 waiting at ~10/s`);
});

test('update keeps queues and counters of classes that still exist', () => {
  const { s, submit, p } = setup(TWO, 1);
  submit('lo');
  submit('lo', 'waiting');
  const next = policy(`upstreams:
  - name: up
    targets: [http://127.0.0.1:1]
    maxConcurrent: 2
routes:
  - upstream: up
classes:
  - name: lo
    priority: 1
defaultClass: lo`);
  s.update(next);
  const st = s.status();
  assert.equal(st.classes.find((k) => k.name === 'lo')!.served, 2, 'the raised cap admitted the waiter');
  assert.equal(st.upstreams[0]!.maxConcurrent, 2);
  void p;
});

test('the global cap (limits.maxConcurrent) holds across upstreams and classes', () => {
  const p = policy(`upstreams:
  - name: a
    targets: [http://127.0.0.1:1]
  - name: b
    targets: [http://127.0.0.1:2]
routes:
  - upstream: a
limits: { maxConcurrent: 2 }
`);
  const s = new Scheduler(p, new FakeClock());
  const log: string[] = [];
  const k = p.classes[0]!;
  const j1 = new TestJob('1', log);
  const j2 = new TestJob('2', log);
  const j3 = new TestJob('3', log);
  s.submit(j1, k, p.upstreams.get('a')!);
  s.submit(j2, k, p.upstreams.get('b')!);
  s.submit(j3, k, p.upstreams.get('b')!);
  assert.deepEqual(log, ['1', '2']);
  j1.done();
  assert.deepEqual(log, ['1', '2', '3'], 'a slot freed at upstream a admits the waiter at upstream b');
});
