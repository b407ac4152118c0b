/**
 * Issue 16 items 2 and 5 with a real redis-server: failClosed never answers 429
 * just because the store is still connecting (start-up, reload), the wait is
 * bounded when Redis is really unreachable, and the Lua GCRA admits fresh keys.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startSluice, simplePolicy, type RunningSluice } from '../helpers/sluice.js';
import { startRedis, type RunningRedis } from '../helpers/redis.js';
import { closedPort, getJson, waitFor } from '../helpers/net.js';

let backend: Backend;
let redis: RunningRedis;

before(async () => {
  backend = await startBackend();
  redis = await startRedis();
});

after(async () => {
  await redis?.stop();
  await backend?.close();
});

const strict = (url: string, extra = ''): string => `  - name: strict
    match: { headers: { x-tier: strict } }
    queue: { size: 100, timeout: 1s }
    rateLimit: { rate: 1000, per: 1s, key: header:x-user, store: { redis: "${url}", failClosed: true }${extra} }`;

async function burst(url: string, n: number, tier = 'strict'): Promise<number[]> {
  return Promise.all(
    Array.from({ length: n }, (_, i) =>
      fetch(`${url}/x`, { headers: { 'x-tier': tier, 'x-user': `u${i}` } }).then(async (r) => (await r.arrayBuffer(), r.status)),
    ),
  );
}

async function drained(s: RunningSluice): Promise<void> {
  await waitFor(async () => {
    const st = await getJson<{ inFlight: number; queued: number }>(`${s.admin}/status`);
    return st.inFlight === 0 && st.queued === 0;
  });
}

test('the issue: the first 40 requests after start of a failClosed Redis class get no 429 (3 starts)', async () => {
  let limited = 0;
  for (let round = 0; round < 3; round++) {
    const s = await startSluice(simplePolicy(backend.url, `classes:\n${strict(redis.url)}\n  - name: free\ndefaultClass: free\n`));
    try {
      const codes = await burst(s.url, 40);
      limited += codes.filter((c) => c === 429).length;
      assert.deepEqual([...new Set(codes)], [200], `round ${round}: ${codes}`);
      await drained(s);
    } finally {
      await s.stop();
    }
  }
  console.log(`failClosed start: ${limited} of 120 early requests limited`);
});

test('a reload that adds a failClosed Redis class holds its first requests until connected, not 429', async () => {
  const s = await startSluice(simplePolicy(backend.url, `classes:\n  - name: free\ndefaultClass: free\n`));
  try {
    await writeFile(s.configFile, simplePolicy(backend.url, `classes:\n${strict(redis.url)}\n  - name: free\ndefaultClass: free\n`));
    assert.equal((await fetch(`${s.admin}/reload`, { method: 'POST' })).status, 200);
    const codes = await burst(s.url, 40);
    assert.deepEqual([...new Set(codes)], [200], `${codes}`);
    await drained(s);
  } finally {
    await s.stop();
  }
});

test('Redis unreachable: the wait is bounded, then failClosed answers 429; other classes are served at once', async () => {
  const dead = `redis://127.0.0.1:${await closedPort()}`;
  const t0 = performance.now();
  const s = await startSluice(simplePolicy(backend.url, `classes:\n${strict(dead)}\n  - name: free\ndefaultClass: free\n`));
  const startMs = performance.now() - t0;
  try {
    // Start-up waited for the store at most STORE_CONNECT_WAIT_MS (5 s), plus process start.
    assert.ok(startMs < 12_000, `start took ${startMs} ms`);
    const t1 = performance.now();
    const codes = await burst(s.url, 5);
    const ms = performance.now() - t1;
    assert.deepEqual(codes, [429, 429, 429, 429, 429]);
    assert.ok(ms < 3000, `refused after ${ms} ms (bounded by the 1 s queue timeout)`);
    assert.deepEqual(await burst(s.url, 3, 'none'), [200, 200, 200]);
    // The connection grace is spent (start-up waited it out): later requests are not held at all.
    const t2 = performance.now();
    assert.deepEqual(await burst(s.url, 3), [429, 429, 429]);
    assert.ok(performance.now() - t2 < 500, `refused after ${performance.now() - t2} ms`);
    await drained(s);
  } finally {
    await s.stop();
  }
});

test('the issue through Redis: 200 fresh keys under rate 1 per 1h, burst 1 are all admitted once', async () => {
  const s = await startSluice(
    simplePolicy(
      backend.url,
      `classes:
  - name: hourly
    match: { headers: { x-tier: hourly } }
    rateLimit: { rate: 1, per: 1h, burst: 1, key: header:x-user, store: { redis: "${redis.url}", failClosed: true } }
  - name: free
defaultClass: free
`,
    ),
  );
  try {
    const first: number[] = [];
    for (let i = 0; i < 200; i++) {
      const r = await fetch(`${s.url}/x`, { headers: { 'x-tier': 'hourly', 'x-user': `fresh-${i}` } });
      await r.arrayBuffer();
      first.push(r.status);
    }
    const ok = first.filter((c) => c === 200).length;
    console.log(`redis fresh keys under 1/h burst 1: ${ok}/200 admitted`);
    assert.equal(ok, 200);
    const again = await fetch(`${s.url}/x`, { headers: { 'x-tier': 'hourly', 'x-user': 'fresh-7' } });
    await again.arrayBuffer();
    assert.equal(again.status, 429);
    assert.equal(again.headers.get('ratelimit-policy'), '"hourly";q=1;w=3600;burst=1');
    await drained(s);
  } finally {
    await s.stop();
  }
});
