import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend } from '../helpers/backend.js';
import { startSluice } from '../helpers/sluice.js';
import { closedPort, getJson } from '../helpers/net.js';

test('a refusing target is retried on another, then ejected; clients see no 502', async () => {
  const backend = await startBackend();
  const dead = await closedPort();
  const s = await startSluice(`upstreams:
  - name: app
    targets: [http://127.0.0.1:${dead}, ${backend.url}]
    outlierDetection: { consecutiveFailures: 3, baseEjectionTime: 30s }
routes:
  - upstream: app
`);
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await fetch(`${s.url}/r${i}`)).status);
    assert.deepEqual(new Set(statuses), new Set([200]), `statuses ${statuses}`);
    const st = await getJson<{ upstreams: { targets: { url: string; ejected: boolean }[] }[] }>(`${s.admin}/status`);
    assert.deepEqual(
      st.upstreams[0]!.targets.map((t) => t.ejected),
      [true, false],
    );
  } finally {
    await s.stop();
    await backend.close();
  }
});

test('with a single target, refusals answer 502 (nothing else to try)', async () => {
  const dead = await closedPort();
  const s = await startSluice(`upstreams:
  - name: app
    targets: [http://127.0.0.1:${dead}]
routes:
  - upstream: app
`);
  try {
    assert.equal((await fetch(`${s.url}/x`)).status, 502);
  } finally {
    await s.stop();
  }
});
