import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend } from '../helpers/backend.js';
import { startSluice } from '../helpers/sluice.js';

test('equal-priority classes share a saturated upstream by weight (3:1)', async (t) => {
  const backend = await startBackend();
  const s = await startSluice(`upstreams:
  - name: app
    targets: [${backend.url}]
    maxConcurrent: 2
routes:
  - upstream: app
classes:
  - name: heavy
    weight: 3
    match: { headers: { x-class: heavy } }
    queue: { size: 1000, timeout: 30s }
  - name: light
    weight: 1
    queue: { size: 1000, timeout: 30s }
defaultClass: light
`);
  try {
    const done = { heavy: 0, light: 0 };
    const until = Date.now() + 3000;
    // Closed-loop clients, 12 per class: both classes always have a backlog.
    const client = async (cls: 'heavy' | 'light'): Promise<void> => {
      while (Date.now() < until) {
        const r = await fetch(`${s.url}/w?delay=10`, { headers: { 'x-class': cls } });
        await r.arrayBuffer();
        if (r.status === 200 && Date.now() < until) done[cls]++;
      }
    };
    await Promise.all([...Array.from({ length: 12 }, () => client('heavy')), ...Array.from({ length: 12 }, () => client('light'))]);
    const ratio = done.heavy / done.light;
    t.diagnostic(`served heavy ${done.heavy}, light ${done.light}: ratio ${ratio.toFixed(2)} (weights 3:1)`);
    assert.ok(done.light > 20, 'the light class is not starved');
    assert.ok(ratio > 2.2 && ratio < 4, `ratio ${ratio.toFixed(2)}`);
  } finally {
    await s.stop();
    await backend.close();
  }
});
