import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../../src/clock.js';
import { Shaper, TokenBucket, type Flow } from '../../../src/shape/shaper.js';

class TestFlow implements Flow {
  need = 0;
  next: Flow | undefined;
  prev: Flow | undefined;
  got = 0;
  constructor(
    readonly shaper: Shaper,
    public own: TokenBucket | undefined = shaper.ownBucket(),
    /** Bytes wanted in total, asked for in chunks of `chunk`. */
    public left = Infinity,
    readonly chunk = 64 * 1024,
  ) {}
  start(): void {
    this.ask();
  }
  private ask(): void {
    const n = Math.min(this.chunk, this.left);
    if (n > 0) this.shaper.request(this, n);
  }
  grant(n: number): void {
    this.got += n;
    this.left -= n;
    if (this.need === 0) this.ask();
  }
}

const MiB = 1024 * 1024;

test('one flow gets the class rate (plus the burst)', () => {
  const clock = new FakeClock();
  const s = new Shaper(clock, 2 * MiB, undefined, undefined);
  const f = new TestFlow(s);
  f.start();
  clock.advance(10_000);
  const expected = 2 * MiB * 10 + s.agg!.burst;
  assert.ok(Math.abs(f.got - expected) / expected < 0.01, `got ${f.got}, expected ~${expected}`);
  s.close();
});

test('concurrent flows share the class rate equally, whatever their arrival order', () => {
  const clock = new FakeClock();
  const s = new Shaper(clock, 4 * MiB, undefined, undefined);
  const flows: TestFlow[] = [];
  for (let i = 0; i < 8; i++) {
    const f = new TestFlow(s);
    flows.push(f);
    f.start();
    clock.advance(3); // staggered arrivals
  }
  const base = flows.map((f) => f.got);
  clock.advance(10_000);
  const total = flows.reduce((a, f, i) => a + f.got - base[i]!, 0);
  assert.ok(Math.abs(total - 4 * MiB * 10) / (4 * MiB * 10) < 0.02, `total ${total}`);
  for (const [i, f] of flows.entries()) {
    const share = (f.got - base[i]!) / total;
    assert.ok(Math.abs(share - 1 / 8) < 0.01, `flow ${i} share ${share}`);
  }
  s.close();
});

test('a per-request cap holds one flow back and its share goes to the others', () => {
  const clock = new FakeClock();
  const s = new Shaper(clock, 4 * MiB, undefined, 512 * 1024);
  const capped = new TestFlow(s);
  const free = new TestFlow(s);
  free.own = undefined; // this one has no cap: only the aggregate holds it
  capped.start();
  free.start();
  clock.advance(10_000);
  const c = capped.got / 10;
  const f = free.got / 10;
  assert.ok(Math.abs(c - 512 * 1024) / (512 * 1024) < 0.03, `capped flow ${c} B/s`);
  assert.ok(Math.abs(c + f - 4 * MiB) / (4 * MiB) < 0.03, `aggregate ${c + f} B/s`);
  s.close();
});

test('per-request caps alone (no aggregate)', () => {
  const clock = new FakeClock();
  const s = new Shaper(clock, undefined, undefined, 100 * 1024);
  const a = new TestFlow(s);
  const b = new TestFlow(s);
  a.start();
  b.start();
  clock.advance(5_000);
  for (const f of [a, b]) assert.ok(Math.abs(f.got / 5 - 100 * 1024) / (100 * 1024) < 0.05, `got ${f.got / 5} B/s`);
  s.close();
});

test('removed flows get nothing more and leave no timer behind', () => {
  const clock = new FakeClock();
  const s = new Shaper(clock, 64 * 1024, 16 * 1024, undefined);
  const f = new TestFlow(s);
  f.start();
  clock.advance(100);
  s.remove(f);
  const got = f.got;
  clock.advance(1000);
  assert.equal(f.got, got);
  assert.equal(s.waitingFlows, 0);
  assert.equal(clock.pendingTimers(), 0);
});

test('a finite body completes exactly', () => {
  const clock = new FakeClock();
  const s = new Shaper(clock, 1 * MiB, undefined, undefined);
  const f = new TestFlow(s, s.ownBucket(), 3 * MiB + 123, 60_000);
  f.start();
  clock.advance(5_000);
  assert.equal(f.got, 3 * MiB + 123);
  assert.equal(clock.pendingTimers(), 0);
});
