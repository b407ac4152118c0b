import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startSluice, simplePolicy, type RunningSluice } from '../helpers/sluice.js';
import { startRedis, type RunningRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/net.js';

let backend: Backend;
let redis: RunningRedis;
let a: RunningSluice;
let b: RunningSluice;

before(async () => {
  backend = await startBackend();
  redis = await startRedis();
  const yaml = simplePolicy(
    backend.url,
    `classes:
  - name: shared
    match: { headers: { x-tier: shared } }
    rateLimit: { rate: 1, per: 10s, burst: 6, key: header:x-user, store: { redis: "${redis.url}" } }
  - name: strict
    match: { headers: { x-tier: strict } }
    rateLimit: { rate: 100, per: 1s, key: ip, store: { redis: "${redis.url}", failClosed: true } }
  - name: free
defaultClass: free
`,
  );
  [a, b] = await Promise.all([startSluice(yaml), startSluice(yaml)]);
  for (const s of [a, b]) await waitFor(() => s.stdout().includes('rate-limit store connected'), 5000, 'redis connection');
});

after(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await redis?.stop();
  await backend?.close();
});

async function status(url: string, headers: Record<string, string>): Promise<number> {
  const r = await fetch(url, { headers });
  await r.arrayBuffer();
  return r.status;
}

test('two instances share one bucket through Redis', async () => {
  const h = { 'x-tier': 'shared', 'x-user': 'carol' };
  const codes: number[] = [];
  for (let i = 0; i < 6; i++) {
    codes.push(await status(`${a.url}/s`, h));
    codes.push(await status(`${b.url}/s`, h));
  }
  // Burst 6 for both together (one token per 10 s refill is negligible here).
  assert.equal(codes.filter((c) => c === 200).length, 6, `codes ${codes}`);
  assert.deepEqual(codes.slice(6), [429, 429, 429, 429, 429, 429]);
  // Another key is not affected.
  assert.equal(await status(`${b.url}/s`, { 'x-tier': 'shared', 'x-user': 'dave' }), 200);
});

test('Redis killed mid-run: the proxy keeps serving on local limits, then shares again once Redis is back', async () => {
  await redis.kill();
  const h = { 'x-tier': 'shared', 'x-user': 'erin' };
  const codes: number[] = [];
  for (let i = 0; i < 8; i++) codes.push(await status(`${a.url}/s`, h));
  // Fail-open: the local bucket of this instance (burst 6) decides.
  assert.deepEqual(codes, [200, 200, 200, 200, 200, 200, 429, 429]);
  // Unlimited classes are not affected at all.
  assert.equal(await status(`${a.url}/free`, {}), 200);
  // failClosed classes are rejected while the store is down.
  assert.equal(await status(`${a.url}/strict`, { 'x-tier': 'strict' }), 429);
  await waitFor(() => a.stdout().includes('rate-limit store unreachable'), 3000, 'outage logged');
  assert.equal(a.stdout().split('rate-limit store unreachable').length - 1, 1, 'logged once, not per request');

  await redis.restart();
  for (const s of [a, b]) await waitFor(() => s.stdout().includes('reachable again'), 10_000, 'reconnect');
  assert.equal(await status(`${a.url}/strict`, { 'x-tier': 'strict' }), 200);
  const h2 = { 'x-tier': 'shared', 'x-user': 'frank' };
  const codes2: number[] = [];
  for (let i = 0; i < 4; i++) {
    codes2.push(await status(`${a.url}/s`, h2));
    codes2.push(await status(`${b.url}/s`, h2));
  }
  assert.equal(codes2.filter((c) => c === 200).length, 6, `shared again: ${codes2}`);
});
