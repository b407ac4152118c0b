/**
 * Property tests of the limiter arithmetic (issue 16.2, 16.4, 16.6), fixed seeds,
 * counts printed. Times come from a FakeClock at arbitrary fractional ms.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FakeClock, systemClock } from '../../../src/clock.js';
import { KeyedBuckets, gcraParams, toUs, MAX_TOLERANCE_US, type Take } from '../../../src/admit/gcra.js';
import { quotaWindow } from '../../../src/admit/limiter.js';

const SEED = 16;
/** The sweeper would fire every 250 fake ms across hours of simulated time; these tests hold few keys. */
const NOSWEEP = { sweepEveryMs: 1e12 };
const out = (): Take => ({ waitMs: 0, rejected: false, remaining: 0 });

/** The 0.1 step (float ms), kept here to show the input of the issue did fail. */
function floatStepAdmits(now: number, intervalMs: number, burst: number): boolean {
  const next = now + intervalMs;
  return next - burst * intervalMs <= now;
}

test('the issue: 200 fresh keys under rate 1 per 1h, burst 1 are all admitted (system clock and fractional fake times)', () => {
  const p = gcraParams(1, 3_600_000, 1);
  const b = new KeyedBuckets(p, systemClock);
  const o = out();
  let admitted = 0;
  for (let i = 0; i < 200; i++) if (!b.take(`client-${i}`, 0, o).rejected) admitted++;
  b.close();
  assert.equal(admitted, 200);
  // Arrival times like performance.now() readings: the float step refused many of them.
  const clock = new FakeClock();
  const f = new KeyedBuckets(p, clock, NOSWEEP);
  let fixed = 0;
  let floatWould = 0;
  fc.assert(
    fc.property(fc.double({ min: 1, max: 1e7, noNaN: true }), (dt) => {
      clock.advance(dt);
      if (!f.take(`k${clock.now()}`, 0, o).rejected) fixed++;
      if (floatStepAdmits(clock.now(), 3_600_000, 1)) floatWould++;
    }),
    { seed: SEED, numRuns: 200 },
  );
  f.close();
  console.log(`fresh keys, 1/h burst 1: integer step admitted ${fixed}/200; the float step would have admitted ${floatWould}/200`);
  assert.equal(fixed, 200);
});

const limitArb = fc.record({
  rate: fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.double({ min: 0.01, max: 1000, noNaN: true }), fc.constantFrom(0.5, 2.5, 1 / 3, 0.1, 7)),
  perMs: fc.oneof(fc.constantFrom(1, 250, 1000, 60_000, 3_600_000, 86_400_000), fc.integer({ min: 1, max: 86_400_000 })),
  burst: fc.integer({ min: 1, max: 1000 }),
}).filter((l) => (l.burst * l.perMs * 1000) / l.rate <= MAX_TOLERANCE_US); // the policy compiler refuses longer ones

test('limits beyond the exact integer range are refused, not silently rounded', () => {
  assert.throws(() => gcraParams(0.01, 86_400_000, 1000), RangeError);
  // Every limit the policy accepts (≤ MAX_TOLERANCE_US before rounding) builds.
  assert.doesNotThrow(() => gcraParams(3, MAX_TOLERANCE_US / 1000, 3));
});

test('property: a fresh key always admits exactly `burst` requests at once (any rate, period, burst, start time)', () => {
  let runs = 0;
  let admittedTotal = 0;
  fc.assert(
    fc.property(limitArb, fc.double({ min: 0, max: 1e10, noNaN: true }), (l, start) => {
      const clock = new FakeClock();
      clock.advance(start);
      const b = new KeyedBuckets(gcraParams(l.rate, l.perMs, l.burst), clock, NOSWEEP);
      const o = out();
      let n = 0;
      while (!b.take('fresh', 0, o).rejected && n <= l.burst) {
        assert.equal(o.remaining, l.burst - n - 1);
        n++;
      }
      b.close();
      runs++;
      admittedTotal += n;
      return n === l.burst;
    }),
    { seed: SEED, numRuns: 2000 },
  );
  console.log(`fresh-key property: ${runs} limits, ${admittedTotal} requests admitted at once, all equal to burst`);
});

test('property: over any window, admitted ≤ burst + rate × window (reject and queue modes)', () => {
  let runs = 0;
  let admittedTotal = 0;
  let rejectedTotal = 0;
  let windows = 0;
  fc.assert(
    fc.property(
      // Small bursts, so that the limit binds within 150 requests.
      limitArb.map((l) => ({ ...l, burst: 1 + (l.burst % 5) })).filter((l) => l.perMs / l.rate >= 0.01),
      fc.array(fc.double({ min: 0, max: 2, noNaN: true }), { minLength: 1, maxLength: 150 }),
      fc.constantFrom(0, 0, 50),
      (l, gapsInIntervals, maxWaitMs) => {
        const clock = new FakeClock();
        clock.advance(12_345.678);
        const p = gcraParams(l.rate, l.perMs, l.burst);
        const b = new KeyedBuckets(p, clock, NOSWEEP);
        const o = out();
        const times: number[] = []; // admitted at, in the limiter's µs
        for (const g of gapsInIntervals) {
          clock.advance((g * l.perMs) / l.rate / 3);
          b.take('k', maxWaitMs, o);
          if (o.rejected) rejectedTotal++;
          else {
            assert.ok(o.waitMs <= maxWaitMs);
            times.push(toUs(clock.now()) + Math.round(o.waitMs * 1000));
          }
        }
        b.close();
        times.sort((x, y) => x - y);
        const perUs = l.perMs * 1000;
        for (let i = 0; i < times.length; i++) {
          for (let j = i; j < times.length; j++) {
            windows++;
            const bound = l.burst + (l.rate * (times[j]! - times[i]!)) / perUs;
            if (j - i + 1 > bound + 1e-9) return false;
          }
        }
        runs++;
        admittedTotal += times.length;
        return true;
      },
    ),
    { seed: SEED, numRuns: 500 },
  );
  console.log(`window property: ${runs} sequences, ${admittedTotal} admitted, ${rejectedTotal} rejected, ${windows} windows checked`);
});

test('property: a reload that changes rate or burst carries each key\'s fill level over', () => {
  let carried = 0;
  fc.assert(
    fc.property(limitArb, limitArb, fc.integer({ min: 0, max: 1000 }), (a, z, used) => {
      const clock = new FakeClock();
      clock.advance(1000);
      const oldB = new KeyedBuckets(gcraParams(a.rate, a.perMs, a.burst), clock, NOSWEEP);
      const o = out();
      const take = Math.min(used, a.burst);
      for (let i = 0; i < take; i++) oldB.take('k', 0, o);
      const newB = new KeyedBuckets(gcraParams(z.rate, z.perMs, z.burst), clock, NOSWEEP);
      newB.carryOver(oldB);
      let n = 0;
      while (!newB.take('k', 0, o).rejected && n <= z.burst) n++;
      oldB.close();
      newB.close();
      carried++;
      // Left: (burst - used)/burst of the old bucket → that share of the new burst (rounded down to whole tokens).
      const expected = Math.floor(((a.burst - take) / a.burst) * z.burst + 1e-9);
      return Math.abs(n - expected) <= 1;
    }),
    { seed: SEED, numRuns: 1000 },
  );
  console.log(`carry-over property: ${carried} parameter changes checked`);
});

test('RateLimit-Policy quota and window are exactly the configured rate (fractional rates)', () => {
  const cases: [number, number, number, number][] = [
    // rate, per ms, q, w
    [0.5, 1000, 1, 2],
    [2.5, 1000, 5, 2],
    [0.25, 1000, 1, 4],
    [1.5, 1000, 3, 2],
    [0.1, 1000, 1, 10],
    [100, 60_000, 5, 3],
    [1, 3_600_000, 1, 3600],
    [3, 2000, 3, 2],
    [2, 1500, 4, 3],
    [10, 1000, 10, 1],
    [1, 250, 4, 1],
    [0.75, 1000, 3, 4],
  ];
  for (const [rate, perMs, q, w] of cases) assert.deepEqual(quotaWindow(rate, perMs), { q, w }, `${rate} per ${perMs} ms`);
  let n = 0;
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 500 }), fc.integer({ min: 1, max: 500 }), fc.constantFrom(1000, 60_000, 3_600_000), (num, den, perMs) => {
      const rate = num / den;
      const { q, w } = quotaWindow(rate, perMs);
      n++;
      const rps = (rate * 1000) / perMs;
      // rate = num/den per P s: the smallest exact window is den·P / gcd(num, den·P).
      const denP = (den * perMs) / 1000;
      const smallest = denP / gcd(num, denP);
      if (smallest > 1_000_000) return q / w <= rps * (1 + 1e-12); // documented fallback: never more than allowed
      // q per w seconds equals rate per perMs, to floating-point precision, in the smallest window.
      return w === smallest && Math.abs(q / w - rps) <= 1e-9 * rps;
    }),
    { seed: SEED, numRuns: 1000 },
  );
  console.log(`quota/window property: ${n} rational rates advertised exactly`);
});

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}
