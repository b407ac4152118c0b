import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { FakeClock } from '../../../src/clock.js';
import { BufferBudget, RateWatch, bufferResponse } from '../../../src/forward/buffer.js';

test('BufferBudget reserves only what it can cover and gives back', () => {
  const b = new BufferBudget(100);
  assert.equal(b.reserve(60), true);
  assert.equal(b.reserve(50), false, 'over the budget: nothing reserved');
  assert.equal(b.inUse, 60);
  assert.equal(b.reserve(40), true);
  b.give(60);
  assert.equal(b.inUse, 40);
  assert.equal(b.reserve(0), false);
});

function watch(clock: FakeClock, waiting: () => boolean): { w: RateWatch; slow: string[] } {
  const slow: string[] = [];
  const w = new RateWatch({ clock, minRate: 1000, windowMs: 2000, waitingOnPeer: waiting, onSlow: (d) => slow.push(d) });
  return { w, slow };
}

test('RateWatch cuts a peer slower than minRate over a window while sluice waits on it', () => {
  const clock = new FakeClock();
  const { w, slow } = watch(clock, () => true);
  for (let i = 0; i < 10; i++) {
    w.add(100); // 100 B per 500 ms = 200 B/s
    clock.advance(500);
  }
  assert.equal(slow.length, 1);
  assert.match(slow[0]!, /below the minimum of 1000 bytes\/s/);
});

test('RateWatch keeps a peer that keeps the rate, and never counts time not spent waiting on it', () => {
  const clock = new FakeClock();
  const fast = watch(clock, () => true);
  for (let i = 0; i < 40; i++) {
    fast.w.add(600); // 1200 B/s
    clock.advance(500);
  }
  assert.equal(fast.slow.length, 0);
  fast.w.stop();
  const idle = watch(clock, () => false); // e.g. waiting for a slot or for the upstream
  clock.advance(60_000);
  assert.equal(idle.slow.length, 0);
  idle.w.stop();
  assert.equal(clock.pendingTimers(), 0, 'stop() leaves no timer');
});

test('bufferResponse absorbs a response that fits and returns its reservation when drained', async () => {
  const budget = new BufferBudget(1 << 20);
  const up = new PassThrough() as unknown as IncomingMessage & PassThrough;
  Object.assign(up, { statusCode: 200, headers: { 'content-length': '300000' } });
  const out = bufferResponse(up, 'GET', 512 * 1024, budget) as PassThrough;
  assert.notEqual(out, up);
  assert.equal(budget.inUse, 300000);
  let ended = false;
  up.on('end', () => (ended = true));
  up.end(Buffer.alloc(300000));
  await new Promise((r) => setImmediate(r));
  assert.equal(ended, true, 'the upstream side is read to its end although nobody reads the buffer');
  out.resume();
  await new Promise((r) => out.once('end', r));
  assert.equal(budget.inUse, 0);
});

test('bufferResponse passes through what does not fit, has no body, or finds the budget spent', () => {
  const budget = new BufferBudget(1000);
  const mk = (status: number, cl?: string): IncomingMessage =>
    Object.assign(new PassThrough(), { statusCode: status, headers: cl === undefined ? {} : { 'content-length': cl } }) as unknown as IncomingMessage;
  const big = mk(200, '5000');
  assert.equal(bufferResponse(big, 'GET', 4000, budget), big);
  const head = mk(200, '10');
  assert.equal(bufferResponse(head, 'HEAD', 4000, budget), head);
  const notModified = mk(304);
  assert.equal(bufferResponse(notModified, 'GET', 4000, budget), notModified);
  const chunked = mk(200);
  assert.equal(bufferResponse(chunked, 'GET', 4000, budget), chunked, 'a 4000-byte reservation exceeds a 1000-byte budget');
  assert.equal(budget.inUse, 0);
});
