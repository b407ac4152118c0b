import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend } from '../helpers/backend.js';
import { startSluice } from '../helpers/sluice.js';
import { getJson, waitFor } from '../helpers/net.js';

interface Status {
  inFlight: number;
  queued: number;
  classes: { name: string; inFlight: number; queued: number; served: number; rejected: Record<string, number> }[];
}

test('codel + adaptive LIFO over real sockets: a standing queue sheds with 503 + Retry-After, fresh requests are served', { timeout: 60_000 }, async () => {
  const backend = await startBackend({ delayMs: 20 });
  const sluice = await startSluice(`upstreams:
  - name: api
    targets: [${backend.url}]
    maxConcurrent: 2
routes:
  - upstream: api
classes:
  - name: free
    queue: { size: 1000, timeout: 30s, codel: { target: 20ms, interval: 100ms }, lifo: adaptive }
defaultClass: free
`);
  try {
    // 200 requests at once against 100 req/s of capacity: the queue stands for seconds.
    const results = await Promise.all(
      Array.from({ length: 200 }, async () => {
        const t0 = performance.now();
        const r = await fetch(`${sluice.url}/x`);
        const body = await r.text();
        return { status: r.status, retryAfter: r.headers.get('retry-after'), body, ms: performance.now() - t0, timing: r.headers.get('server-timing') };
      }),
    );
    const shed = results.filter((r) => r.status === 503);
    const ok = results.filter((r) => r.status === 200);
    assert.equal(shed.length + ok.length, results.length, `unexpected statuses: ${[...new Set(results.map((r) => r.status))].join(',')}`);
    assert.ok(shed.length > 50, `only ${shed.length} shed`);
    assert.ok(ok.length >= 2, `only ${ok.length} served`);
    for (const r of shed) {
      assert.ok(Number(r.retryAfter) >= 1, 'Retry-After on a shed');
      const p = JSON.parse(r.body) as { status: number; class: string; detail: string };
      assert.equal(p.status, 503);
      assert.equal(p.class, 'free');
      assert.match(p.detail, /standing queue/);
    }
    // Nobody waited anywhere near the 30 s queue timeout: the standing queue was cut short.
    assert.ok(Math.max(...results.map((r) => r.ms)) < 10_000);
    await waitFor(async () => {
      const s = await getJson<Status>(`${sluice.admin}/status`);
      return s.inFlight === 0 && s.queued === 0;
    }, 10_000, 'in flight and queued back to zero');
    const st = await getJson<Status>(`${sluice.admin}/status`);
    assert.equal(st.classes[0]!.rejected.shed, shed.length);
    assert.equal(backend.inFlight, 0);
    // Once the queue no longer stands, requests are served again.
    assert.equal((await fetch(`${sluice.url}/fresh`)).status, 200);
  } finally {
    await sluice.stop();
    await backend.close();
  }
});

test('hostile clients against auto + codel + LIFO: resets while queued, in flight and mid-response leave nothing behind', { timeout: 60_000 }, async () => {
  const backend = await startBackend({ delayMs: 15 });
  const sluice = await startSluice(`upstreams:
  - name: api
    targets: [${backend.url}]
    maxConcurrent: auto
    adaptive: { min: 3, initial: 6 }
routes:
  - upstream: api
classes:
  - name: premium
    priority: 0
    reserve: 1
    match: { headers: { x-tier: premium } }
    queue: { size: 1000, timeout: 5s, lifo: adaptive }
  - name: free
    priority: 1
    queue: { size: 1000, timeout: 5s, codel: { target: 10ms, interval: 50ms }, lifo: adaptive }
defaultClass: free
`);
  try {
    const statuses = new Map<number | string, number>();
    await Promise.all(
      Array.from({ length: 300 }, async (_, i) => {
        const ac = new AbortController();
        // A third abort at once, a third after a random moment (queued or in flight), a third never.
        if (i % 3 === 0) setTimeout(() => ac.abort(), 0);
        else if (i % 3 === 1) setTimeout(() => ac.abort(), Math.random() * 200);
        try {
          const r = await fetch(`${sluice.url}/h${i}`, { signal: ac.signal, headers: i % 5 === 0 ? { 'x-tier': 'premium' } : {} });
          await r.text();
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        } catch {
          statuses.set('aborted', (statuses.get('aborted') ?? 0) + 1);
        }
      }),
    );
    for (const k of statuses.keys()) assert.ok(k === 200 || k === 503 || k === 'aborted', `unexpected outcome ${k}`);
    assert.ok((statuses.get(200) ?? 0) > 0);
    await waitFor(async () => {
      const s = await getJson<Status>(`${sluice.admin}/status`);
      return s.inFlight === 0 && s.queued === 0 && s.classes.every((c) => c.inFlight === 0 && c.queued === 0);
    }, 10_000, 'in flight and queued back to zero');
    await waitFor(() => backend.inFlight === 0, 5000, 'backend idle');
    // Still serving afterwards.
    assert.equal((await fetch(`${sluice.url}/after`)).status, 200);
  } finally {
    await sluice.stop();
    await backend.close();
  }
});
