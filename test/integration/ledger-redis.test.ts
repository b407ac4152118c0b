/**
 * A token reserved in Redis for a request held back by `onLimit: queue` is
 * given back when the client leaves before its turn (issue #10): the next
 * request waits one interval, not two.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend } from '../helpers/backend.js';
import { startSluice, simplePolicy } from '../helpers/sluice.js';
import { startRedis } from '../helpers/redis.js';
import { abortAfter, waitFor } from '../helpers/net.js';
import { assertDrained } from '../helpers/invariants.js';

test('a client leaving while held by a shared (Redis) rate limit gets its token refunded', async () => {
  const backend = await startBackend();
  const redis = await startRedis();
  const s = await startSluice(
    simplePolicy(
      backend.url,
      `classes:
  - name: paced
    queue: { size: 10, timeout: 10s }
    rateLimit: { rate: 1, per: 2s, burst: 1, onLimit: queue, key: class, store: { redis: "${redis.url}" } }
defaultClass: paced
`,
    ),
  );
  try {
    await waitFor(() => s.stdout().includes('rate-limit store connected'), 5000, 'redis connection');
    const first = await fetch(`${s.url}/first`);
    assert.equal(first.status, 200);
    await first.text();
    await abortAfter(`${s.url}/leaves`, 200); // held ~2 s with a token reserved in Redis, then gone
    await assertDrained(s.admin);
    const t0 = Date.now();
    const third = await fetch(`${s.url}/third`);
    const waited = Date.now() - t0;
    assert.equal(third.status, 200);
    await third.text();
    assert.ok(waited < 2900, `waited ${waited} ms: about one interval (refunded), not two`);
    assert.ok(!backend.hits.includes('/leaves'));
    await assertDrained(s.admin);
  } finally {
    await s.stop();
    await redis.stop();
    await backend.close();
  }
});
