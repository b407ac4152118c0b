import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSluice } from '../helpers/sluice.js';
import { startBackend } from '../helpers/backend.js';
import { abortAfter, waitFor } from '../helpers/net.js';
import { startBackends, closeAll, get, assertIdle, reload } from '../helpers/gateway.js';

const targets = (bs: { url: string }[], weights?: number[]) =>
  bs.map((b, i) => (weights ? `      - { url: "${b.url}", weight: ${weights[i]} }` : `      - ${b.url}`)).join('\n');

test('weighted round-robin honours target weights within 10% over 1,000 requests', async () => {
  const bs = await startBackends(3);
  const weights = [5, 3, 2];
  const s = await startSluice(`upstreams:
  - name: app
    balance: roundRobin
    targets:
${targets(bs, weights)}
routes:
  - upstream: app
`);
  try {
    const seen = new Map<string, number>();
    for (let i = 0; i < 1000; i++) {
      const r = await get(`${s.url}/w${i}`);
      assert.equal(r.status, 200);
      const id = r.headers.get('x-backend-id')!;
      seen.set(id, (seen.get(id) ?? 0) + 1);
    }
    const got = bs.map((_, i) => seen.get(`b${i}`) ?? 0);
    process.stdout.write(`# weights 5:3:2 over 1000 requests → ${got.join(':')}\n`);
    weights.forEach((w, i) => assert.ok(Math.abs(got[i]! - w * 100) <= w * 10, `target ${i}: ${got[i]} vs ${w * 100}`));
    await assertIdle(s);
  } finally {
    await s.stop();
    await closeAll(bs);
  }
});

test('weighted random: shares follow the weights', async () => {
  const bs = await startBackends(2);
  const s = await startSluice(`upstreams:
  - name: app
    balance: random
    targets:
${targets(bs, [1, 3])}
routes:
  - upstream: app
`);
  try {
    let heavy = 0;
    for (let i = 0; i < 400; i++) if ((await get(`${s.url}/r${i}`)).headers.get('x-backend-id') === 'b1') heavy++;
    process.stdout.write(`# random 1:3 over 400 requests → ${400 - heavy}:${heavy}\n`);
    // Expected 300; 4 standard deviations (±35) keep the test from failing by chance.
    assert.ok(Math.abs(heavy - 300) <= 35, `heavy target got ${heavy}`);
    await assertIdle(s);
  } finally {
    await s.stop();
    await closeAll(bs);
  }
});

test('leastRequest sends most requests to the target that is not busy', async () => {
  // b0 answers after 150 ms, b1 at once: under concurrency b0 is the one with requests in flight.
  const bs = [await startBackend({ id: 'b0', delayMs: 150 }), await startBackend({ id: 'b1' })];
  const s = await startSluice(`upstreams:
  - name: app
    balance: leastRequest
    targets: [${bs[0]!.url}, ${bs[1]!.url}]
routes:
  - upstream: app
`);
  try {
    const counts = { b0: 0, b1: 0 };
    const worker = async (w: number): Promise<void> => {
      for (let i = 0; i < 25; i++) counts[(await get(`${s.url}/lr${w}-${i}`)).headers.get('x-backend-id') as 'b0' | 'b1']++;
    };
    await Promise.all(Array.from({ length: 6 }, (_, w) => worker(w)));
    process.stdout.write(`# leastRequest, 6 concurrent clients, slow b0 vs fast b1 → b0 ${counts.b0}, b1 ${counts.b1}\n`);
    // Round-robin would split 75:75.
    assert.ok(counts.b1 > 2 * counts.b0, `idle target should dominate: ${JSON.stringify(counts)}`);
    await assertIdle(s);
  } finally {
    await s.stop();
    await closeAll(bs);
  }
});

test('consistent hash: a key keeps its target; adding 1 of 10 targets by reload moves about 1/11 of keys', async () => {
  const bs = await startBackends(11);
  const policy = (n: number) => `upstreams:
  - name: app
    balance: hash
    hashOn: header:x-user
    targets:
${targets(bs.slice(0, n))}
routes:
  - upstream: app
`;
  const s = await startSluice(policy(10));
  try {
    const K = 600;
    const before: string[] = [];
    for (let k = 0; k < K; k++) before.push((await get(`${s.url}/h`, { 'x-user': `user-${k}` })).headers.get('x-backend-id')!);
    for (let k = 0; k < 50; k++) assert.equal((await get(`${s.url}/again`, { 'x-user': `user-${k}` })).headers.get('x-backend-id'), before[k]);
    await reload(s, policy(11));
    let moved = 0;
    let elsewhere = 0;
    for (let k = 0; k < K; k++) {
      const now = (await get(`${s.url}/h`, { 'x-user': `user-${k}` })).headers.get('x-backend-id')!;
      if (now !== before[k]) {
        moved++;
        if (now !== 'b10') elsewhere++;
      }
    }
    process.stdout.write(`# consistent hash through sluice: adding 1 target to 10 moved ${moved}/${K} keys = ${((100 * moved) / K).toFixed(1)}% (ideal 9.1%)\n`);
    assert.equal(elsewhere, 0, 'keys only move to the new target');
    assert.ok(moved / K > 0.04 && moved / K < 0.15, `moved ${moved}/${K}`);
    // Without the header: balanced round-robin, no error.
    assert.equal((await get(`${s.url}/nokey`)).status, 200);
    await assertIdle(s);
  } finally {
    await s.stop();
    await closeAll(bs);
  }
});

test('clients that reset mid-request leave no request counted in flight on any target', async () => {
  const bs = [await startBackend({ id: 'b0', delayMs: 300 }), await startBackend({ id: 'b1', delayMs: 300 })];
  const s = await startSluice(`upstreams:
  - name: app
    balance: leastRequest
    targets: [${bs[0]!.url}, ${bs[1]!.url}]
routes:
  - upstream: app
`);
  try {
    await Promise.all(Array.from({ length: 20 }, (_, i) => abortAfter(`${s.url}/abort${i}`, 20 + (i % 5) * 60)));
    await assertIdle(s);
    await waitFor(() => bs.every((b) => b.inFlight === 0), 5000, 'backend exchanges ended');
    // Still balanced afterwards: both targets serve (ties between idle targets are broken at random).
    const ids = new Set<string>();
    for (let i = 0; i < 24; i++) ids.add((await get(`${s.url}/after${i}`)).headers.get('x-backend-id')!);
    assert.equal(ids.size, 2);
    await assertIdle(s);
  } finally {
    await s.stop();
    await closeAll(bs);
  }
});
