/** Live dashboard figures and target health transitions, on a simulated clock. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { FakeClock } from '../../../src/clock.js';
import { LiveStats } from '../../../src/telemetry/live.js';
import { TargetHealthWatch } from '../../../src/telemetry/target-health.js';
import type { TargetHealth } from '../../../src/forward/pool.js';
import type { RequestContext } from '../../../src/accept/context.js';

function ctx(clock: FakeClock, cls: string, queueMs: number, totalMs: number, ok = true): RequestContext {
  return {
    klass: { name: cls },
    queueMs,
    start: clock.now() - totalMs,
    outcome: ok ? 'forwarded' : 'queue_full',
    status: ok ? 200 : 503,
  } as unknown as RequestContext;
}

test('LiveStats: rates over the window (or the class\'s age), nearest-rank p50/p99, old samples age out', () => {
  const clock = new FakeClock();
  clock.advance(10_000);
  const live = new LiveStats(clock, 5000, 1000);
  assert.deepEqual(live.figures('none'), { okPerSec: 0, rejectedPerSec: 0, queueP50: null, queueP99: null, totalP50: null, totalP99: null });
  for (let i = 1; i <= 100; i++) live.record(ctx(clock, 'a', i, i * 10));
  for (let i = 0; i < 20; i++) live.record(ctx(clock, 'a', 0, 1, false));
  clock.advance(2000);
  let f = live.figures('a');
  assert.equal(f.okPerSec, 50, '100 in the 2 s the class has existed');
  assert.equal(f.rejectedPerSec, 10);
  assert.equal(f.queueP50, 50);
  assert.equal(f.queueP99, 99);
  assert.equal(f.totalP99, 990);
  clock.advance(4000);
  f = live.figures('a');
  assert.equal(f.okPerSec, 0, 'out of the 5 s window');
  assert.equal(f.totalP50, null);
});

test('LiveStats: a full ring rates over the span it covers', () => {
  const clock = new FakeClock();
  const live = new LiveStats(clock, 5000, 100);
  for (let i = 0; i < 300; i++) {
    live.record(ctx(clock, 'a', 0, 1));
    clock.advance(2); // 500/s
  }
  const f = live.figures('a');
  assert.ok(Math.abs(f.okPerSec - 500) < 10, String(f.okPerSec));
});

test('TargetHealthWatch: failing, ejected and recovered, one warning each; nothing while healthy', () => {
  const clock = new FakeClock();
  const lines: { level: number; msg: string; target: string }[] = [];
  const log = pino({ level: 'info' }, new Writable({ write(c, _e, cb) { lines.push(JSON.parse(String(c))); cb(); } }));
  let h: TargetHealth = { url: 'http://t:1', weight: 1, active: 0, healthy: true, ejected: false, consecutiveFailures: 0, ejections: 0 };
  const watch = new TargetHealthWatch({ targets: () => [['app', [h]]] }, log, clock, 1000);
  watch.start();
  clock.advance(3000);
  assert.equal(lines.length, 0);
  h = { ...h, consecutiveFailures: 2 };
  clock.advance(1000);
  h = { ...h, consecutiveFailures: 3 };
  clock.advance(1000);
  h = { ...h, consecutiveFailures: 0, ejected: true, ejections: 1 };
  clock.advance(1000);
  h = { ...h, ejected: false };
  clock.advance(1000);
  assert.deepEqual(lines.map((l) => l.msg.split(':')[0]), ['target failing', 'target ejected'], 'back in rotation is not yet recovered');
  h = { ...h, ejections: 0 };
  clock.advance(1000);
  clock.advance(5000);
  assert.deepEqual(lines.map((l) => l.msg.split(':')[0]), ['target failing', 'target ejected', 'target recovered']);
  assert.ok(lines.every((l) => l.level === 40 && l.target === 'http://t:1'));
  watch.stop();
  assert.equal(clock.pendingTimers(), 0);
});
