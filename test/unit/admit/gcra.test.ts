import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../../src/clock.js';
import { KeyedBuckets, gcraStep, type Take } from '../../../src/admit/gcra.js';

const out = (): Take => ({ waitMs: 0, rejected: false, remaining: 0 });

test('burst at once, then refilled at rate/per', () => {
  const clock = new FakeClock();
  const b = new KeyedBuckets({ intervalMs: 100, burst: 5 }, clock); // 10/s, burst 5
  const o = out();
  for (let i = 0; i < 5; i++) {
    b.take('a', 0, o);
    assert.equal(o.rejected, false, `request ${i} of the burst`);
    assert.equal(o.remaining, 4 - i);
  }
  b.take('a', 0, o);
  assert.equal(o.rejected, true);
  assert.ok(Math.abs(o.waitMs - 100) < 1e-6, `retry after one interval, got ${o.waitMs}`);
  clock.advance(99);
  assert.equal(b.take('a', 0, o).rejected, true);
  clock.advance(1);
  assert.equal(b.take('a', 0, o).rejected, false);
  assert.equal(b.take('a', 0, o).rejected, true);
  // A long idle refills the bucket, but never above burst.
  clock.advance(10_000);
  let n = 0;
  while (!b.take('a', 0, o).rejected) n++;
  assert.equal(n, 5);
  b.close();
});

test('admitted over time = rate × time + burst at 10x the allowed rate', () => {
  const clock = new FakeClock();
  const b = new KeyedBuckets({ intervalMs: 10, burst: 20 }, clock); // 100/s
  const o = out();
  let admitted = 0;
  for (let t = 0; t < 10_000; t++) {
    // 1000 requests per second offered
    if (!b.take('k', 0, o).rejected) admitted++;
    clock.advance(1);
  }
  assert.ok(Math.abs(admitted - (100 * 10 + 20)) <= 2, `admitted ${admitted}`);
  b.close();
});

test('keys are isolated', () => {
  const clock = new FakeClock();
  const b = new KeyedBuckets({ intervalMs: 1000, burst: 1 }, clock);
  const o = out();
  assert.equal(b.take('a', 0, o).rejected, false);
  assert.equal(b.take('a', 0, o).rejected, true);
  assert.equal(b.take('b', 0, o).rejected, false);
  b.close();
});

test('queue mode reserves future tokens up to the max wait, and refund gives one back', () => {
  const clock = new FakeClock();
  const b = new KeyedBuckets({ intervalMs: 100, burst: 1 }, clock);
  const o = out();
  assert.equal(b.take('a', 250, o).waitMs, 0);
  b.take('a', 250, o);
  assert.deepEqual([o.rejected, Math.round(o.waitMs)], [false, 100]);
  b.take('a', 250, o);
  assert.deepEqual([o.rejected, Math.round(o.waitMs)], [false, 200]);
  b.take('a', 250, o);
  assert.equal(o.rejected, true, 'a wait of 300 ms exceeds 250 ms');
  b.refund('a');
  b.take('a', 250, o);
  assert.deepEqual([o.rejected, Math.round(o.waitMs)], [false, 200]);
  b.close();
});

test('idle keys are swept; memory is bounded by the key cap', () => {
  const clock = new FakeClock();
  const b = new KeyedBuckets({ intervalMs: 1000, burst: 2 }, clock, { maxKeys: 1000, sweepBatch: 300, sweepEveryMs: 100 });
  const o = out();
  for (let i = 0; i < 5000; i++) b.take(`ip-${i}`, 0, o);
  assert.equal(b.size, 1000, 'never more than maxKeys');
  assert.ok(b.capEvictions > 0);
  clock.advance(500);
  assert.equal(b.size, 1000, 'still limited: not idle yet');
  clock.advance(600); // every bucket is full again after 1 s
  clock.advance(400); // a few sweep ticks
  assert.equal(b.size, 0);
  assert.equal(clock.pendingTimers(), 0, 'no timer left when nothing is tracked');
  b.close();
});

test('a fresh key with burst 1 is always admitted (no rounding above now)', () => {
  const out = { waitMs: 0, rejected: false, remaining: 0 };
  for (let i = 0; i < 10_000; i++) {
    const now = Math.random() * 1e6;
    assert.notEqual(gcraStep(now, now, { intervalMs: 60_000, burst: 1 }, 0, out), undefined, `refused at now=${now}`);
    assert.equal(out.remaining, 0);
  }
});
