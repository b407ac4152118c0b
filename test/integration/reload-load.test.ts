/** Reloads under load and upstreams that drop keep-alive sockets: no request that should succeed fails. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { startBackend } from '../helpers/backend.js';
import { startSluice } from '../helpers/sluice.js';

const policy = (backend: string, maxConcurrent: number) => `upstreams:
  - name: app
    targets: [${backend}]
    maxConcurrent: ${maxConcurrent}
routes:
  - upstream: app
classes:
  - name: gold
    priority: 0
    match: { headers: { x-tier: gold } }
    queue: { size: 1000, timeout: 10s }
  - name: free
    priority: 1
    queue: { size: 1000, timeout: 10s }
defaultClass: free
`;

test('20 reloads (valid and invalid alternately) under load: zero failed requests', async () => {
  const backend = await startBackend();
  const s = await startSluice(policy(backend.url, 4));
  try {
    let stop = false;
    const statuses = new Map<number, number>();
    const worker = async (i: number): Promise<void> => {
      while (!stop) {
        const r = await fetch(`${s.url}/w${i}?delay=5`, { headers: i % 2 ? { 'x-tier': 'gold' } : {} }).catch(() => undefined);
        const code = r ? r.status : 0;
        if (r) await r.arrayBuffer();
        statuses.set(code, (statuses.get(code) ?? 0) + 1);
      }
    };
    const workers = Array.from({ length: 16 }, (_, i) => worker(i));
    const reloads: number[] = [];
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 60));
      const valid = i % 2 === 0;
      await writeFile(s.configFile, valid ? policy(backend.url, 2 + (i % 5)) : 'upstreams: [oops\n');
      reloads.push((await fetch(`${s.admin}/reload`, { method: 'POST' })).status);
    }
    stop = true;
    await Promise.all(workers);
    assert.deepEqual(reloads, Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? 200 : 400)));
    assert.deepEqual([...statuses.keys()], [200], `statuses: ${JSON.stringify([...statuses])}`);
    assert.ok(statuses.get(200)! > 100, `only ${statuses.get(200)} requests`);
    assert.ok(backend.maxInFlight <= 6, `backend saw ${backend.maxInFlight} (largest maxConcurrent 6)`);
  } finally {
    await s.stop();
    await backend.close();
  }
});

test('an upstream that closes keep-alive sockets after each answer: every request still succeeds', async () => {
  const backend = await startBackend();
  const s = await startSluice(policy(backend.url, 4));
  try {
    for (let i = 0; i < 30; i++) {
      const r = await fetch(`${s.url}/drop-after`);
      assert.equal(r.status, 200, `request ${i}`);
      assert.equal(await r.text(), 'dropped-after');
      if (i % 3 === 0) await new Promise((res) => setTimeout(res, 5));
    }
  } finally {
    await s.stop();
    await backend.close();
  }
});
