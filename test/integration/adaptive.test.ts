import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { startKneeBackend } from '../helpers/knee-backend.js';
import { startSluice } from '../helpers/sluice.js';
import { getJson, waitFor } from '../helpers/net.js';

interface Status {
  inFlight: number;
  queued: number;
  classes: { name: string; inFlight: number; queued: number; served: number }[];
  upstreams: { name: string; inFlight: number; maxConcurrent: number | null; adaptive?: { limit: number; phase: string; minRttMs: number | null } }[];
}

/** Closed-loop clients: `n` loops, each sending the next request when the last one ends. */
function load(url: string, n: number, headers: Record<string, string> = {}): { stop(): Promise<void>; ok: () => number; other: () => number } {
  const agent = new Agent({ keepAlive: true, maxSockets: n });
  let running = true;
  let ok = 0;
  let other = 0;
  const loop = async (): Promise<void> => {
    while (running) {
      await new Promise<void>((resolve) => {
        const req = request(url, { agent, headers }, (res) => {
          if (res.statusCode === 200) ok++;
          else other++;
          res.resume();
          res.on('end', resolve);
          res.on('error', resolve);
        });
        req.on('error', () => {
          other++;
          resolve();
        });
        req.end();
      });
    }
  };
  const loops = Array.from({ length: n }, loop);
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
    },
    ok: () => ok,
    other: () => other,
  };
}

function share(samples: number[], max: number): number {
  return samples.filter((x) => x <= max).length / samples.length;
}

test('maxConcurrent: auto holds a backend near its knee of 8 and follows it when its capacity halves', { timeout: 90_000 }, async () => {
  const backend = await startKneeBackend(8, 20);
  const sluice = await startSluice(`upstreams:
  - name: api
    targets: [${backend.url}]
    maxConcurrent: auto
routes:
  - upstream: api
classes:
  - name: premium
    priority: 0
    match: { headers: { x-tier: premium } }
  - name: free
    priority: 1
    queue: { size: 1000, timeout: 30s }
defaultClass: free
`);
  const free = load(`${sluice.url}/`, 40);
  const premium = load(`${sluice.url}/`, 2, { 'x-tier': 'premium' });
  try {
    try {
      await new Promise((r) => setTimeout(r, 5000));
      backend.resetSamples();
      await new Promise((r) => setTimeout(r, 3000));
      const settled = backend.samples.slice();
      const st = await getJson<Status>(`${sluice.admin}/status`);
      const up = st.upstreams[0]!;
      assert.ok(up.adaptive, 'status shows the adaptive limit');
      assert.ok(up.maxConcurrent !== null && up.maxConcurrent >= 3 && up.maxConcurrent <= 16, `limit ${up.maxConcurrent}`);
      assert.ok(share(settled, 12) >= 0.95, `backend above 12 in flight ${(100 * (1 - share(settled, 12))).toFixed(1)}% of the time: ${JSON.stringify(up)}`);
      assert.ok(Math.max(...settled) >= 5, `backend under-used: at most ${Math.max(...settled)} in flight: ${JSON.stringify(up)}`);
      const metrics = await (await fetch(`${sluice.admin}/metrics`)).text();
      assert.match(metrics, /sluice_upstream_max_concurrent\{[^}]*upstream="api"[^}]*\} \d+/);

      // Capacity halves: the knee moves to 4. Within 5 s the limit follows.
      backend.knee = 4;
      await new Promise((r) => setTimeout(r, 5000));
      backend.resetSamples();
      await new Promise((r) => setTimeout(r, 2000));
      const halved = backend.samples.slice();
      const st2 = await getJson<Status>(`${sluice.admin}/status`);
      assert.ok(share(halved, 7) >= 0.9, `after halving the backend still above 7 in flight ${(100 * (1 - share(halved, 7))).toFixed(1)}% of the time: ${JSON.stringify(st2.upstreams[0])}`);
      assert.ok(free.ok() > 0 && premium.ok() > 0);
    } finally {
      await Promise.all([free.stop(), premium.stop()]);
    }
    await waitFor(async () => {
      const s = await getJson<Status>(`${sluice.admin}/status`);
      return s.inFlight === 0 && s.queued === 0 && s.classes.every((c) => c.inFlight === 0 && c.queued === 0);
    }, 10_000, 'in flight and queued back to zero');
  } finally {
    await sluice.stop();
    await backend.close();
  }
});
