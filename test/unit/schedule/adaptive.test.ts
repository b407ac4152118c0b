import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../../src/clock.js';
import { parsePolicy, formatIssue } from '../../../src/policy/load.js';
import type { Policy } from '../../../src/policy/types.js';
import { Scheduler, type Job, type Permit, type RejectReason } from '../../../src/schedule/scheduler.js';
import { GradientLimit } from '../../../src/schedule/limit/gradient.js';
import type { ProxyError } from '../../../src/errors.js';

function policy(yaml: string): Policy {
  const r = parsePolicy(yaml, 't.yaml');
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
  return r.policy;
}

function issues(yaml: string): string[] {
  const r = parsePolicy(yaml, 't.yaml');
  return r.ok ? [] : r.issues.map(formatIssue);
}

const BASE = `upstreams:
  - name: up
    targets: [http://127.0.0.1:1]
    maxConcurrent: auto
routes:
  - upstream: up
`;

/**
 * A simulated backend on the fake clock: a request's latency is fixed when it
 * starts, from the backend's in-flight count n: base while n <= knee, then
 * base·(n/knee)² (contention: it climbs steeply past the knee).
 */
class SimBackend {
  inFlight = 0;
  maxSeen = 0;
  served = 0;
  knee = 8;
  constructor(
    readonly clock: FakeClock,
    readonly baseMs = 20,
  ) {}
  latency(): number {
    const n = this.inFlight;
    return n <= this.knee ? this.baseMs : this.baseMs * (n / this.knee) ** 2;
  }
}

class SimJob implements Job {
  queueEntry: Job['queueEntry'];
  rejected: RejectReason | undefined;
  constructor(readonly b: SimBackend) {}
  grant(p: Permit): void {
    const b = this.b;
    b.inFlight++;
    b.maxSeen = Math.max(b.maxSeen, b.inFlight);
    const ms = b.latency();
    b.clock.setTimer(() => {
      b.inFlight--;
      b.served++;
      p.release({ kind: 'latency', rttMs: ms });
    }, ms);
  }
  reject(_err: ProxyError, reason: RejectReason): void {
    this.rejected = reason;
  }
}

/** Keeps `backlog` requests queued at all times (a closed loop with more demand than capacity). */
function drive(s: Scheduler, p: Policy, b: SimBackend, clock: FakeClock, ms: number, backlog = 50): number[] {
  const k = p.classes[0]!;
  const up = p.upstreams.get('up')!;
  const limits: number[] = [];
  for (let t = 0; t < ms; t += 5) {
    while (s.status().queued < backlog) s.submit(new SimJob(b), k, up);
    clock.advance(5);
    limits.push(s.status().upstreams[0]!.maxConcurrent!);
  }
  return limits;
}

test('maxConcurrent: auto finds a knee of 8 and follows it when capacity halves', () => {
  const p = policy(`${BASE}classes:
  - name: c
    queue: { size: 1000, timeout: 60s }
defaultClass: c
`);
  const clock = new FakeClock();
  const s = new Scheduler(p, clock);
  const b = new SimBackend(clock);
  drive(s, p, b, clock, 5000);
  b.maxSeen = 0;
  const settled = drive(s, p, b, clock, 5000);
  assert.ok(b.maxSeen <= 12, `backend saw ${b.maxSeen} in flight after settling`);
  assert.ok(Math.min(...settled) >= 6, `limit fell to ${Math.min(...settled)}, below the knee's neighbourhood`);
  const st = s.status().upstreams[0]!.adaptive!;
  assert.equal(st.algorithm, 'gradient');
  assert.ok(st.minRttMs !== null && st.minRttMs >= 19 && st.minRttMs <= 21, `minRtt ${st.minRttMs}`);

  // Capacity halves: the knee moves to 4.
  b.knee = 4;
  drive(s, p, b, clock, 5000);
  b.maxSeen = 0;
  const after = drive(s, p, b, clock, 3000);
  assert.ok(b.maxSeen <= 7, `after halving the backend still saw ${b.maxSeen} in flight`);
  assert.ok(Math.max(...after) <= 7 && Math.min(...after) >= 3, `limits after halving ${Math.min(...after)}..${Math.max(...after)}`);

  // Recovery: the limit climbs back.
  b.knee = 8;
  const rec = drive(s, p, b, clock, 5000);
  assert.ok(rec[rec.length - 1]! >= 7, `limit did not recover: ${rec[rec.length - 1]}`);
  // Stop feeding: everything drains.
  clock.advance(10_000);
  assert.equal(s.status().inFlight, 0);
  assert.equal(b.inFlight, 0);
});

test('priorities and reserves keep working on top of the adaptive limit', () => {
  const p = policy(`upstreams:
  - name: up
    targets: [http://127.0.0.1:1]
    adaptive: { min: 3, initial: 10 }
routes:
  - upstream: up
classes:
  - name: premium
    priority: 0
    reserve: 2
    match: { headers: { x-tier: premium } }
  - name: free
    priority: 1
defaultClass: free
`);
  const clock = new FakeClock();
  const s = new Scheduler(p, clock);
  const b = new SimBackend(clock);
  const up = p.upstreams.get('up')!;
  const [premium, free] = [p.classes[0]!, p.classes[1]!];
  let premiumServed = 0;
  let freeServed = 0;
  for (let t = 0; t < 4000; t += 5) {
    for (let i = 0; i < 2; i++) {
      const j = new SimJob(b);
      const grant = j.grant.bind(j);
      j.grant = (perm) => {
        premiumServed++;
        grant(perm);
      };
      if (s.classState('premium')!.queued < 5) s.submit(j, premium, up);
    }
    while (s.classState('free')!.queued < 50) {
      const j = new SimJob(b);
      const grant = j.grant.bind(j);
      j.grant = (perm) => {
        freeServed++;
        grant(perm);
      };
      s.submit(j, free, up);
    }
    clock.advance(5);
    const u = s.status().upstreams[0]!;
    assert.ok(u.inFlight <= Math.max(u.maxConcurrent!, u.adaptive!.max), 'cap exceeded');
  }
  assert.ok(premiumServed > freeServed, `premium ${premiumServed} vs free ${freeServed}: priority lost under the adaptive limit`);
  assert.ok(freeServed > 0, 'free starved completely although premium demand is limited');
  assert.ok(b.maxSeen <= 16, `backend saw ${b.maxSeen}`);
});

test('overload answers (dropped) push the limit down; ignored exchanges do not move it', () => {
  const cfg = { min: 3, max: 100, initial: 40, tolerance: 1.25, smoothing: 0.5, windowMs: 100, probeIntervalMs: 30_000 };
  const g = new GradientLimit(cfg, 0, () => 0.5, () => 0);
  assert.equal(g.limit, 3, 'starts with a probe at min');
  let now = 0;
  for (let i = 0; i < 25; i++) g.onSample({ rttMs: 10, inFlight: 2, dropped: false, now: (now += 1) });
  assert.equal(g.limit, 40, 'after the probe: initial');
  assert.equal(g.status().minRttMs, 10);
  for (let w = 0; w < 10; w++) {
    for (let i = 0; i < 10; i++) g.onSample({ rttMs: 0, inFlight: 30, dropped: true, now: (now += 11) });
  }
  assert.ok(g.limit < 30, `limit ${g.limit} after 10 windows of overload answers`);
});

test('app-limited traffic does not grow the limit; probes recur and lower min RTT', () => {
  const cfg = { min: 3, max: 1000, initial: 20, tolerance: 1.25, smoothing: 0.5, windowMs: 100, probeIntervalMs: 1000 };
  const g = new GradientLimit(cfg, 0, () => 0.5, () => 0);
  let now = 0;
  for (let i = 0; i < 25; i++) g.onSample({ rttMs: 10, inFlight: 1, dropped: false, now: (now += 1) });
  // Fast answers, but only 2 in flight: no evidence more would not queue.
  for (let i = 0; i < 500; i++) g.onSample({ rttMs: 10, inFlight: 2, dropped: false, now: (now += 1) });
  assert.ok(g.limit <= 20, `grew to ${g.limit} while app-limited`);
  // The next probe (after ~1 s) drops to min and measures a faster backend.
  let sawProbe = false;
  for (let i = 0; i < 2000 && !sawProbe; i++) {
    g.onSample({ rttMs: 10, inFlight: 2, dropped: false, now: (now += 1) });
    sawProbe = g.status().phase === 'probe';
  }
  assert.ok(sawProbe, 'no probe within 2 s of a 1 s probe interval');
  assert.equal(g.limit, 3);
  for (let i = 0; i < 25; i++) g.onSample({ rttMs: 5, inFlight: 3, dropped: false, now: (now += 1) });
  assert.equal(g.status().phase, 'run');
  assert.equal(g.status().minRttMs, 5);
});

test('setUpstreamLimit caps a fixed upstream at run time and re-dispatches when it rises', () => {
  const p = policy(`upstreams:
  - name: up
    targets: [http://127.0.0.1:1]
    maxConcurrent: 4
routes:
  - upstream: up
classes:
  - name: c
defaultClass: c
`);
  const clock = new FakeClock();
  const s = new Scheduler(p, clock);
  const granted: Permit[] = [];
  const job = (): Job => ({ grant: (perm) => void granted.push(perm), reject: () => assert.fail('rejected') });
  s.setUpstreamLimit('up', 2);
  for (let i = 0; i < 5; i++) s.submit(job(), p.classes[0]!, p.upstreams.get('up')!);
  assert.equal(granted.length, 2);
  assert.equal(s.status().upstreams[0]!.maxConcurrent, 2);
  s.setUpstreamLimit('up', 10);
  assert.equal(granted.length, 4, 'the configured 4 still caps');
  s.setUpstreamLimit('up', undefined);
  assert.equal(s.status().upstreams[0]!.maxConcurrent, 4);
  s.setUpstreamLimit('nope', 1);
  for (const g of granted.splice(0)) g.release();
  assert.equal(granted.length, 1, 'the last waiter starts');
  granted[0]!.release();
  assert.equal(s.status().inFlight, 0);
  assert.equal(s.status().queued, 0);
});

test('policy: auto and adaptive compile; bad combinations are errors', () => {
  const p = policy(`${BASE}classes:
  - name: c
defaultClass: c
`);
  const u = p.upstreams.get('up')!;
  assert.equal(u.adaptive?.min, 3);
  assert.equal(u.maxConcurrent, 1000);
  assert.deepEqual(issues(`upstreams:
  - name: up
    targets: [http://127.0.0.1:1]
    maxConcurrent: 8
    adaptive: { min: 2 }
routes:
  - upstream: up
`).length, 1);
  assert.ok(issues(`upstreams:
  - name: up
    targets: [http://127.0.0.1:1]
    maxConcurrent: fast
routes:
  - upstream: up
`)[0]!.includes('positive integer or auto'));
  const r = issues(`${BASE.replace('maxConcurrent: auto', 'adaptive: { min: 2 }')}classes:
  - name: c
    reserve: 2
defaultClass: c
`);
  assert.equal(r.length, 1);
  assert.match(r[0]!, /adaptive.min must be at least 3/);
  const d = policy(`${BASE}classes:
  - name: c
    reserve: 4
defaultClass: c
`);
  assert.equal(d.upstreams.get('up')!.adaptive!.min, 5, 'default min leaves a shared slot beside reserves');
});

test("the proxy's own event-loop delay is not taken for upstream queueing", () => {
  const cfg = { min: 3, max: 100, initial: 20, tolerance: 1.25, smoothing: 0.5, windowMs: 100, probeIntervalMs: 60_000 };
  let lag = 0;
  const g = new GradientLimit(cfg, 0, () => 0.5, () => lag);
  let now = 0;
  for (let i = 0; i < 25; i++) g.onSample({ rttMs: 10, inFlight: 2, dropped: false, now: (now += 1) });
  assert.equal(g.limit, 20);
  // Responses look 8 ms slower, but the event loop was 8 ms late on average: no queueing upstream.
  lag = 8;
  for (let i = 0; i < 1000; i++) g.onSample({ rttMs: 18, inFlight: 20, dropped: false, now: (now += 1) });
  assert.ok(g.limit >= 20, `limit fell to ${g.limit} on proxy lag alone`);
  // A lag beyond the min RTT: windows are not trusted, the limit holds.
  lag = 50;
  const before = g.limit;
  for (let i = 0; i < 1000; i++) g.onSample({ rttMs: 200, inFlight: before, dropped: false, now: (now += 1) });
  assert.equal(g.limit, before);
  // Real queueing (no lag) still brings it down.
  lag = 0;
  for (let i = 0; i < 1000; i++) g.onSample({ rttMs: 40, inFlight: before, dropped: false, now: (now += 1) });
  assert.ok(g.limit < before, `limit ${g.limit} did not fall on real queueing`);
});

test('reload: an unchanged adaptive block keeps its learned limit; changed knobs start over; a fixed cap replaces it', () => {
  const yaml = (adaptive: string) => `upstreams:
  - name: up
    targets: [http://127.0.0.1:1]
    ${adaptive}
routes:
  - upstream: up
classes:
  - name: c
    queue: { size: 1000, timeout: 60s }
defaultClass: c
`;
  const p = policy(yaml('adaptive: { min: 3, initial: 20 }'));
  const clock = new FakeClock();
  const s = new Scheduler(p, clock);
  const b = new SimBackend(clock);
  drive(s, p, b, clock, 3000);
  const learned = s.status().upstreams[0]!.adaptive!;
  assert.equal(learned.phase, 'run');
  s.update(policy(yaml('adaptive: { min: 3, initial: 20 }')));
  assert.deepEqual(s.status().upstreams[0]!.adaptive, learned, 'same knobs: same limiter');
  const p2 = policy(yaml('adaptive: { min: 4, initial: 20 }'));
  s.update(p2);
  assert.equal(s.status().upstreams[0]!.adaptive!.phase, 'probe', 'new knobs: learning starts over');
  const p3 = policy(yaml('maxConcurrent: 5'));
  s.update(p3);
  assert.equal(s.status().upstreams[0]!.adaptive, undefined);
  assert.equal(s.status().upstreams[0]!.maxConcurrent, 5);
  clock.advance(120_000);
  assert.equal(s.status().inFlight, 0);
  assert.equal(s.status().queued, 0);
});
