import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RoundRobin, RandomPick, LeastRequest, RingHash, hash32 } from '../../../src/forward/balance.js';

const all = (): boolean => true;

/** Deterministic PRNG (mulberry32) so the random tests do not depend on luck. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function counts(pick: () => number, n: number, size: number): number[] {
  const c = new Array<number>(size).fill(0);
  for (let i = 0; i < n; i++) c[pick()]!++;
  return c;
}

test('weighted round-robin gives each target its weight share, interleaved', () => {
  const members = [{ weight: 5, active: 0 }, { weight: 3, active: 0 }, { weight: 2, active: 0 }];
  const rr = new RoundRobin(members);
  const c = counts(() => rr.pick(all), 1000, 3);
  assert.deepEqual(c, [500, 300, 200]);
  // Smooth: the heavy target never takes more than 2 picks in a row with 5:3:2.
  const seq = Array.from({ length: 20 }, () => rr.pick(all));
  let run = 1;
  for (let i = 1; i < seq.length; i++) {
    run = seq[i] === seq[i - 1] ? run + 1 : 1;
    assert.ok(run <= 2, `run of ${run} in ${seq}`);
  }
});

test('round-robin skips ineligible targets and returns -1 when none is eligible', () => {
  const rr = new RoundRobin([{ weight: 1, active: 0 }, { weight: 1, active: 0 }, { weight: 1, active: 0 }]);
  const c = counts(() => rr.pick((i) => i !== 1), 100, 3);
  assert.deepEqual(c, [50, 0, 50]);
  assert.equal(rr.pick(() => false), -1);
});

test('weighted random stays within 10% of the weights over 10,000 picks', () => {
  const r = new RandomPick([{ weight: 1, active: 0 }, { weight: 3, active: 0 }], rng(7));
  const c = counts(() => r.pick(all), 10_000, 2);
  assert.ok(Math.abs(c[1]! / 10_000 - 0.75) < 0.075, `${c}`);
});

test('least request prefers the target with fewer requests in flight', () => {
  const members = [{ weight: 1, active: 8 }, { weight: 1, active: 0 }, { weight: 1, active: 8 }];
  const lr = new LeastRequest(members, rng(3));
  const c = counts(() => lr.pick(all), 900, 3);
  // The idle target wins every draw it takes part in: 2 of the 3 pairs, i.e. about 2/3 of picks.
  assert.ok(c[1]! > 500, `${c}`);
  // With two targets both are always drawn: the idle one always wins.
  const two = new LeastRequest([{ weight: 1, active: 3 }, { weight: 1, active: 0 }], rng(5));
  assert.deepEqual(counts(() => two.pick(all), 100, 2), [0, 100]);
});

test('ring hash: a key always maps to the same target; adding 1 of 10 targets moves about 1/11 of keys', () => {
  const ids = Array.from({ length: 11 }, (_, i) => `http://10.0.0.${i + 1}:80`);
  const ten = new RingHash(ids.slice(0, 10).map(() => ({ weight: 1, active: 0 })), ids.slice(0, 10));
  const eleven = new RingHash(ids.map(() => ({ weight: 1, active: 0 })), ids);
  const N = 100_000;
  let moved = 0;
  let movedElsewhere = 0;
  const load = new Array<number>(11).fill(0);
  for (let k = 0; k < N; k++) {
    const key = `user-${k}`;
    const a = ten.pick(all, key);
    assert.equal(a, ten.pick(all, key));
    const b = eleven.pick(all, key);
    load[b]!++;
    if (a !== b) {
      moved++;
      if (b !== 10) movedElsewhere++;
    }
  }
  const share = moved / N;
  process.stdout.write(`# ring hash: adding 1 target to 10 moved ${(share * 100).toFixed(2)}% of ${N} keys (ideal ${(100 / 11).toFixed(2)}%); load per target ${load.join(' ')}\n`);
  assert.equal(movedElsewhere, 0, 'keys only move to the new target');
  assert.ok(share > 0.06 && share < 0.125, `moved ${share}`);
  for (const l of load) assert.ok(Math.abs(l / N - 1 / 11) < 0.35 / 11, `load ${load}`);
});

test('ring hash walks past ineligible targets; removing one moves only its keys', () => {
  const ids = ['a', 'b', 'c', 'd'];
  const ring = new RingHash(ids.map(() => ({ weight: 1, active: 0 })), ids);
  for (let k = 0; k < 2000; k++) {
    const key = `k${k}`;
    const home = ring.pick(all, key);
    const without = ring.pick((i) => i !== 2, key);
    if (home !== 2) assert.equal(without, home);
    else assert.notEqual(without, 2);
  }
  assert.equal(ring.pick(() => false, 'x'), -1);
});

test('ring hash honours weights and falls back to round-robin without a key', () => {
  const ring = new RingHash([{ weight: 3, active: 0 }, { weight: 1, active: 0 }], ['x', 'y']);
  const c = counts(() => ring.pick(all, String(Math.random())), 20_000, 2);
  assert.ok(Math.abs(c[0]! / 20_000 - 0.75) < 0.075, `${c}`);
  assert.deepEqual([ring.pick(all), ring.pick(all), ring.pick(all), ring.pick(all)].sort(), [0, 0, 0, 1]);
  assert.notEqual(hash32('a'), hash32('b'));
});
