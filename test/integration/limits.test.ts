import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:http2';
import { request } from 'node:http';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startSluice, simplePolicy, type RunningSluice } from '../helpers/sluice.js';
import { getJson } from '../helpers/net.js';
import { assertDrained } from '../helpers/invariants.js';

const MiB = 1024 * 1024;
let backend: Backend;
let sluice: RunningSluice;

before(async () => {
  backend = await startBackend();
  sluice = await startSluice(
    simplePolicy(
      backend.url,
      `classes:
  - name: limited
    match: { headers: { x-tier: limited } }
    rateLimit: { rate: 2, per: 1s, burst: 3, key: header:x-user }
  - name: patient
    match: { headers: { x-tier: patient } }
    queue: { size: 100, timeout: 5s }
    rateLimit: { rate: 10, per: 1s, burst: 1, key: class, onLimit: queue }
  - name: slow
    match: { headers: { x-tier: slow } }
    bandwidth: { download: 1MiB/s, upload: 1MiB/s }
  - name: capped
    match: { headers: { x-tier: capped } }
    bandwidth: { download: 4MiB/s, perRequest: { download: 512KiB/s } }
  - name: free
defaultClass: free
`,
    ),
  );
});

after(async () => {
  try {
    // The invariant: when traffic stops, every in-flight and queued count is zero.
    await assertDrained(sluice.admin);
  } finally {
    await sluice.stop();
  }
  await backend.close();
});

test('over the limit: 429 problem+json with Retry-After, RateLimit-Policy and RateLimit', async () => {
  const h = { 'x-tier': 'limited', 'x-user': 'alice' };
  const codes: number[] = [];
  let last: Response | undefined;
  for (let i = 0; i < 5; i++) {
    last = await fetch(`${sluice.url}/x`, { headers: h });
    codes.push(last.status);
    if (last.status === 200) await last.arrayBuffer();
  }
  assert.deepEqual(codes, [200, 200, 200, 429, 429]);
  const r = last!;
  assert.equal(r.headers.get('content-type'), 'application/problem+json');
  assert.equal(r.headers.get('retry-after'), '1');
  assert.equal(r.headers.get('ratelimit-policy'), '"limited";q=2;w=1;burst=3');
  assert.match(r.headers.get('ratelimit') ?? '', /^"limited";r=0;t=1$/);
  const body = (await r.json()) as Record<string, unknown>;
  assert.equal(body.status, 429);
  assert.equal(body.class, 'limited');
  assert.equal(body.type, 'urn:sluice:error:rate-limited');
  // Another key has its own bucket.
  const bob = await fetch(`${sluice.url}/x`, { headers: { 'x-tier': 'limited', 'x-user': 'bob' } });
  assert.equal(bob.status, 200);
  await bob.arrayBuffer();
  const st = await getJson<{ classes: { name: string; rejected: Record<string, number> }[] }>(`${sluice.admin}/status`);
  assert.equal(st.classes.find((c) => c.name === 'limited')!.rejected.rate_limited, 2);
});

test('onLimit: queue delays instead of rejecting', async () => {
  const t0 = performance.now();
  const rs = await Promise.all(
    Array.from({ length: 6 }, () => fetch(`${sluice.url}/q`, { headers: { 'x-tier': 'patient' } }).then(async (r) => (await r.arrayBuffer(), r.status))),
  );
  const ms = performance.now() - t0;
  assert.deepEqual(rs, [200, 200, 200, 200, 200, 200]);
  // burst 1 then one every 100 ms: the sixth goes after ~500 ms.
  assert.ok(ms >= 450 && ms < 2000, `took ${ms} ms`);
});

function download(url: string, headers: Record<string, string>): Promise<{ bytes: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(url, { headers, agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (d: Buffer) => (bytes += d.length));
      res.on('end', () => resolve({ bytes, ms: performance.now() - t0 }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

test('HTTP/1.1 download is shaped to the class rate', async () => {
  const n = 3 * MiB;
  const { bytes, ms } = await download(`${sluice.url}/bytes?n=${n}`, { 'x-tier': 'slow' });
  assert.equal(bytes, n);
  const rate = bytes / (ms / 1000);
  // Burst is 1/10 s of the rate: ~2.9 s expected.
  assert.ok(rate > 0.8 * MiB && rate < 1.25 * MiB, `rate ${(rate / MiB).toFixed(2)} MiB/s in ${ms.toFixed(0)} ms`);
});

test('HTTP/2 download is shaped to the class rate', async () => {
  const n = 2 * MiB;
  const session = connect(sluice.url);
  try {
    const t0 = performance.now();
    const bytes = await new Promise<number>((resolve, reject) => {
      const s = session.request({ ':path': `/bytes?n=${n}`, 'x-tier': 'slow' });
      let b = 0;
      s.on('data', (d: Buffer) => (b += d.length));
      s.on('end', () => resolve(b));
      s.on('error', reject);
    });
    const ms = performance.now() - t0;
    assert.equal(bytes, n);
    const rate = bytes / (ms / 1000);
    assert.ok(rate > 0.8 * MiB && rate < 1.25 * MiB, `rate ${(rate / MiB).toFixed(2)} MiB/s`);
  } finally {
    session.close();
  }
});

test('request bodies are shaped (upload)', async () => {
  const n = 2 * MiB;
  const t0 = performance.now();
  const res = await new Promise<{ bytes: number }>((resolve, reject) => {
    const req = request(`${sluice.url}/count`, { method: 'POST', headers: { 'x-tier': 'slow', 'content-length': n }, agent: false }, (r) => {
      let s = '';
      r.setEncoding('utf8').on('data', (d: string) => (s += d));
      r.on('end', () => resolve(JSON.parse(s) as { bytes: number }));
    });
    req.on('error', reject);
    const chunk = Buffer.alloc(64 * 1024, 98);
    let sent = 0;
    const pump = (): void => {
      while (sent < n) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
  const ms = performance.now() - t0;
  assert.equal(res.bytes, n);
  const rate = n / (ms / 1000);
  assert.ok(rate > 0.8 * MiB && rate < 1.25 * MiB, `upload rate ${(rate / MiB).toFixed(2)} MiB/s`);
});

test('per-request cap: one download of a capped class is held to its perRequest rate', async () => {
  const n = MiB;
  const { bytes, ms } = await download(`${sluice.url}/bytes?n=${n}`, { 'x-tier': 'capped' });
  assert.equal(bytes, n);
  const rate = bytes / (ms / 1000);
  assert.ok(rate > 0.4 * MiB && rate < 0.65 * MiB, `rate ${(rate / MiB).toFixed(2)} MiB/s`);
});

test('unshaped classes are not slowed', async () => {
  const { bytes, ms } = await download(`${sluice.url}/bytes?n=${16 * MiB}`, {});
  assert.equal(bytes, 16 * MiB);
  assert.ok(ms < 3000, `took ${ms} ms`);
});
