import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { startBackend } from '../helpers/backend.js';
import { startSluice } from '../helpers/sluice.js';
import { getJson, waitFor } from '../helpers/net.js';

const policy = (backend: string, extra = '') => `upstreams:
  - name: app
    targets: [${backend}]
    maxConcurrent: 2
routes:
  - match: { pathPrefix: /a }
    upstream: app
${extra}`;

test('SIGHUP and POST /reload swap the policy; an invalid one is refused and the old keeps serving', async () => {
  const backend = await startBackend();
  const s = await startSluice(policy(backend.url));
  try {
    assert.equal((await fetch(`${s.url}/a`)).status, 200);
    assert.equal((await fetch(`${s.url}/b`)).status, 404);

    await writeFile(s.configFile, policy(backend.url, '  - match: { pathPrefix: /b }\n    upstream: app\n'));
    s.proc.kill('SIGHUP');
    await waitFor(async () => (await fetch(`${s.url}/b`)).status === 200, 5000, '/b to be routed after SIGHUP');

    await writeFile(s.configFile, policy(backend.url, 'classes:\n  - name: x\n    priorty: 1\ndefaultClass: x\n'));
    const bad = await fetch(`${s.admin}/reload`, { method: 'POST' });
    assert.equal(bad.status, 400);
    const body = (await bad.json()) as { ok: boolean; errors: string[] };
    assert.equal(body.ok, false);
    assert.match(body.errors[0]!, new RegExp(`^${s.configFile}:10:5: classes\\[0\\]\\.priorty: unknown key 'priorty' \\(did you mean 'priority'\\?\\)`));
    assert.equal((await fetch(`${s.url}/b`)).status, 200, 'old policy still serving');

    await writeFile(s.configFile, policy(backend.url));
    const good = await fetch(`${s.admin}/reload`, { method: 'POST' });
    assert.equal(good.status, 200);
    assert.equal((await fetch(`${s.url}/b`)).status, 404);
  } finally {
    await s.stop();
    await backend.close();
  }
});

test('SIGTERM under load: in-flight and queued requests finish, then exit 0 and stop listening', async () => {
  const backend = await startBackend();
  const s = await startSluice(policy(backend.url, 'shutdown: { grace: 10s }\n'));
  try {
    const reqs = Array.from({ length: 10 }, (_, i) => fetch(`${s.url}/a/${i}?delay=150`).then((r) => r.status, () => 0));
    await waitFor(async () => (await getJson<{ queued: number }>(`${s.admin}/status`)).queued >= 6, 5000, 'requests to queue');
    const code = s.stop('SIGTERM');
    const statuses = await Promise.all(reqs);
    assert.deepEqual(statuses, Array(10).fill(200));
    assert.equal(await code, 0);
    await assert.rejects(fetch(`${s.url}/a`), 'nothing listens after exit');
  } finally {
    await backend.close();
  }
});

test('SIGTERM with a short grace: what is still queued gets 503, nothing hangs', async () => {
  const backend = await startBackend();
  const s = await startSluice(policy(backend.url, 'shutdown: { grace: 300ms }\n'));
  try {
    const reqs = Array.from({ length: 8 }, (_, i) =>
      fetch(`${s.url}/a/${i}?delay=2000`).then(
        (r) => r.status,
        () => 0,
      ),
    );
    await waitFor(async () => (await getJson<{ queued: number }>(`${s.admin}/status`)).queued === 6, 5000, 'requests to queue');
    const t0 = Date.now();
    const code = await s.stop('SIGTERM');
    const statuses = await Promise.all(reqs);
    assert.equal(code, 0);
    assert.ok(Date.now() - t0 < 3000, 'exited soon after the grace period');
    assert.equal(statuses.filter((x) => x === 503).length, 6, `statuses ${statuses}`);
    // The two in flight were cut at the end of the grace period: an error, not a hang.
    assert.equal(statuses.filter((x) => x === 0).length, 2, `statuses ${statuses}`);
  } finally {
    await backend.close();
  }
});
