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
    this.permit = p;
    this.log.push(this.name);
  }
  reject(err: ProxyError, reason: RejectReason): void {
    assert.equal(this.error, undefined, 'rejected twice');
    this.error = err;
    this.reason = reason;
  }
}

function setup(queue: string) {
  const p = policy(`upstreams:
  - name: up
    targets: [http://127.0.0.1:1]
    maxConcurrent: 1
routes:
  - upstream: up
classes:
  - name: hi
    priority: 0
    match: { headers: { x-tier: hi } }
  - name: lo
    priority: 1
    queue: ${queue}
defaultClass: lo
`);
  const clock = new FakeClock();
  const s = new Scheduler(p, clock);
  const log: string[] = [];
  const byName = new Map<string, TestJob>();
  /** Releases the holder's slot; returns the job that got it, if any. */
  const handOver = (holder: TestJob): TestJob | undefined => {
    const n = log.length;
    holder.permit!.release();
    return log.length > n ? byName.get(log.at(-1)!) : undefined;
  };
  const submit = (cls: string, name: string): TestJob => {
    const j = new TestJob(name, log);
    byName.set(name, j);
    s.submit(j, p.classes.find((k) => k.name === cls)!, p.upstreams.get('up')!);
    return j;
  };
  return { s, clock, log, submit, handOver };
}

test('off by default: a standing queue is served oldest first and nothing is shed', () => {
  const { s, clock, log, submit } = setup('{ size: 100, timeout: 60s }');
  const first = submit('lo', 'first');
  const waiters = Array.from({ length: 10 }, (_, i) => {
    clock.advance(20);
    return submit('lo', `w${i}`);
  });
  clock.advance(500);
  first.permit!.release();
  assert.equal(log.at(-1), 'w0');
  assert.ok(waiters.every((w) => w.error === undefined));
});

test('codel: sheds waiters older than target once the oldest wait stood above it for an interval', () => {
  const { s, clock, submit, handOver } = setup('{ size: 100, timeout: 60s, codel: { target: 10ms, interval: 100ms } }');
  let holder: TestJob | undefined = submit('lo', 'h0');
  const waiters: TestJob[] = [];
  // Waits build up: one arrival every 5 ms, one completion every 20 ms.
  for (let t = 0; t < 400; t += 5) {
    waiters.push(submit('lo', `w${t}`));
    clock.advance(5);
    if (t % 20 === 15 && holder) holder = handOver(holder);
  }
  const shed = waiters.filter((w) => w.reason === 'shed');
  assert.ok(shed.length > 20, `only ${shed.length} shed from a standing queue`);
  for (const w of shed) {
    assert.equal(w.error!.status, 503);
    assert.ok((w.error!.retryAfterMs ?? 0) > 0, 'Retry-After on a shed');
    assert.match(w.error!.message, /standing queue/);
  }
  const st = s.status();
  assert.ok(st.queued < 40, `queue still long: ${st.queued}`);
  assert.equal(st.queued + shed.length + waiters.filter((w) => w.permit).length, waiters.length, 'every waiter accounted for');
});

test('codel: a queue that drains below target now and then is never shed', () => {
  const { clock, submit } = setup('{ size: 100, timeout: 60s, codel: { target: 10ms, interval: 100ms } }');
  let holder = submit('lo', 'h');
  const all: TestJob[] = [];
  for (let t = 0; t < 2000; t += 10) {
    // A short burst every 50 ms, served within 10 ms: waits dip below target each time.
    const j = submit('lo', `j${t}`);
    all.push(j);
    clock.advance(5);
    holder.permit!.release();
    holder = j;
    clock.advance(5);
  }
  assert.equal(all.filter((j) => j.reason === 'shed').length, 0);
});

test('codel sheds the lowest priority first: a starved class stands while the served one does not', () => {
  const { clock, submit } = setup('{ size: 100, timeout: 60s, codel: { target: 10ms, interval: 50ms } }');
  let holder = submit('hi', 'h');
  const lo: TestJob[] = [];
  for (let t = 0; t < 400; t += 10) {
    lo.push(submit('lo', `lo${t}`));
    const hi = submit('hi', `hi${t}`);
    clock.advance(10);
    holder.permit!.release();
    holder = hi;
  }
  assert.ok(lo.filter((j) => j.reason === 'shed').length > 0, 'the starved low class was not shed');
  assert.ok(lo.every((j) => !j.permit), 'low class got a slot although high was always waiting');
});

test('adaptive LIFO: newest first while the queue stands, oldest first otherwise', () => {
  const { s, clock, log, submit, handOver } = setup('{ size: 100, timeout: 60s, lifo: adaptive }');
  const h = submit('lo', 'h');
  submit('lo', 'w0');
  for (let i = 1; i <= 5; i++) {
    clock.advance(30);
    submit('lo', `w${i}`);
  }
  // t=150: the oldest has waited 150 ms (> 5 ms default target): the interval starts; still FIFO.
  let cur = handOver(h)!;
  clock.advance(10);
  cur = handOver(cur)!;
  assert.deepEqual(log.slice(1), ['w0', 'w1']);
  // t=260: the oldest wait has stood above target for 110 ms (> 100 ms interval): newest first.
  clock.advance(100);
  cur = handOver(cur)!;
  cur = handOver(cur)!;
  assert.deepEqual(log.slice(3), ['w5', 'w4']);
  cur = handOver(cur)!;
  cur = handOver(cur)!;
  assert.equal(handOver(cur), undefined);
  assert.equal(s.status().queued, 0);
  // The queue emptied: the next backlog is FIFO again.
  const h2 = submit('lo', 'h2');
  submit('lo', 'x0');
  submit('lo', 'x1');
  clock.advance(1);
  const next = handOver(h2)!;
  assert.equal(log.at(-1), 'x0');
  handOver(handOver(next)!);
  assert.equal(s.status().inFlight, 0);
});
