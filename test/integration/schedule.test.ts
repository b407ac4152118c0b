import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:http2';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startSluice, type RunningSluice } from '../helpers/sluice.js';
import { abortAfter, getJson, waitFor } from '../helpers/net.js';
import { assertDrained } from '../helpers/invariants.js';

let backend: Backend;
let sluice: RunningSluice;

interface Status {
  classes: { name: string; inFlight: number; queued: number; served: number; rejected: Record<string, number> }[];
  upstreams: { name: string; inFlight: number; maxConcurrent: number }[];
}

before(async () => {
  backend = await startBackend();
  sluice = await startSluice(`upstreams:
  - name: fragile
    targets: [${backend.url}]
    maxConcurrent: 4
routes:
  - match: { pathPrefix: / }
    upstream: fragile
classes:
  - name: premium
    priority: 0
    match: { headers: { x-tier: premium } }
    queue: { size: 100, timeout: 10s }
  - name: tiny
    priority: 1
    match: { headers: { x-tier: tiny } }
    queue: { size: 2, timeout: 10s }
  - name: impatient
    priority: 1
    match: { headers: { x-tier: impatient } }
    queue: { size: 10, timeout: 150ms }
  - name: free
    priority: 1
    queue: { size: 100, timeout: 10s }
defaultClass: free
`);
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

const get = (path: string, tier?: string) => fetch(`${sluice.url}${path}`, { headers: tier ? { 'x-tier': tier } : {} });

async function idle(): Promise<void> {
  await waitFor(async () => {
    const s = await getJson<Status>(`${sluice.admin}/status`);
    return s.upstreams[0]!.inFlight === 0 && s.classes.every((c) => c.queued === 0);
  }, 10_000, 'the proxy to be idle');
}

test('the backend never sees more than maxConcurrent, over HTTP/1.1 and HTTP/2 at once', async () => {
  backend.reset();
  const h1 = Array.from({ length: 30 }, (_, i) => get(`/load/${i}?delay=30`, i % 3 ? undefined : 'premium').then((r) => r.status));
  const session = connect(sluice.url);
  const h2 = Array.from(
    { length: 30 },
    (_, i) =>
      new Promise<number>((resolve, reject) => {
        const s = session.request({ ':path': `/h2load/${i}?delay=30` });
        let status = 0;
        s.on('response', (h) => (status = Number(h[':status'])));
        s.on('data', () => {});
        s.on('end', () => resolve(status));
        s.on('error', reject);
        s.end();
      }),
  );
  const statuses = await Promise.all([...h1, ...h2]);
  session.close();
  assert.deepEqual(new Set(statuses), new Set([200]));
  assert.ok(backend.maxInFlight <= 4, `backend saw ${backend.maxInFlight} in flight`);
  assert.equal(backend.maxInFlight, 4, 'and the slots were used');
});

test('premium requests that arrive later are served before queued free ones', async () => {
  await idle();
  const done: string[] = [];
  const track = (p: Promise<Response>, name: string) => p.then(async (r) => (await r.text(), done.push(name), r.status));
  const free = Array.from({ length: 16 }, (_, i) => track(get(`/f/${i}?delay=80`), 'free'));
  await waitFor(async () => (await getJson<Status>(`${sluice.admin}/status`)).classes.find((c) => c.name === 'free')!.queued >= 10, 5000, 'free to queue');
  const premium = Array.from({ length: 4 }, (_, i) => track(get(`/p/${i}?delay=80`, 'premium'), 'premium'));
  await Promise.all([...free, ...premium]);
  const lastPremium = done.lastIndexOf('premium');
  // 4 free were in flight when premium arrived; premium takes the next 4 slots.
  assert.ok(lastPremium < 10, `premium finished at positions ${done.map((d, i) => (d === 'premium' ? i : -1)).filter((i) => i >= 0)}`);
});

test('a full queue answers 503 problem+json with Retry-After and the class', async () => {
  await idle();
  const hold = Array.from({ length: 4 }, (_, i) => get(`/hold/${i}?delay=400`));
  await waitFor(async () => (await getJson<Status>(`${sluice.admin}/status`)).upstreams[0]!.inFlight === 4, 5000, 'slots busy');
  const queued = [get('/t1', 'tiny'), get('/t2', 'tiny')];
  await waitFor(async () => (await getJson<Status>(`${sluice.admin}/status`)).classes.find((c) => c.name === 'tiny')!.queued === 2, 5000, 'tiny queue full');
  const r = await get('/t3', 'tiny');
  assert.equal(r.status, 503);
  assert.equal(r.headers.get('content-type'), 'application/problem+json');
  assert.ok(Number(r.headers.get('retry-after')) >= 1);
  const body = (await r.json()) as Record<string, unknown>;
  assert.equal(body.class, 'tiny');
  assert.match(String(body.detail), /queue of class 'tiny' is full/);
  assert.deepEqual((await Promise.all([...hold, ...queued])).map((x) => x.status), [200, 200, 200, 200, 200, 200]);
  const s = await getJson<Status>(`${sluice.admin}/status`);
  assert.equal(s.classes.find((c) => c.name === 'tiny')!.rejected.queue_full, 1);
});

test('waiting longer than the queue timeout answers 503 with Retry-After', async () => {
  await idle();
  const hold = Array.from({ length: 4 }, (_, i) => get(`/hold2/${i}?delay=600`));
  await waitFor(async () => (await getJson<Status>(`${sluice.admin}/status`)).upstreams[0]!.inFlight === 4, 5000, 'slots busy');
  const t0 = Date.now();
  const r = await get('/late', 'impatient');
  assert.equal(r.status, 503);
  assert.ok(r.headers.get('retry-after'));
  assert.match(String(((await r.json()) as { detail: string }).detail), /waited \d+ ms in class 'impatient' \(timeout 150 ms\)/);
  assert.ok(Date.now() - t0 < 550, 'answered at the timeout, not when a slot freed');
  await Promise.all(hold);
});

test('a client that leaves while queued never reaches the upstream', async () => {
  await idle();
  backend.reset();
  const hold = Array.from({ length: 4 }, (_, i) => get(`/hold3/${i}?delay=500`));
  await waitFor(async () => (await getJson<Status>(`${sluice.admin}/status`)).upstreams[0]!.inFlight === 4, 5000, 'slots busy');
  await abortAfter(`${sluice.url}/never-forwarded`, 100);
  await waitFor(async () => (await getJson<Status>(`${sluice.admin}/status`)).classes.every((c) => c.queued === 0), 2000, 'queue to empty');
  await Promise.all(hold);
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(!backend.hits.includes('/never-forwarded'), 'aborted request reached the backend');
});

test('GET /status reports per-class and per-upstream counters', async () => {
  await idle();
  const s = await getJson<Status>(`${sluice.admin}/status`);
  const names = s.classes.map((c) => c.name);
  assert.deepEqual(names, ['premium', 'tiny', 'impatient', 'free']);
  const premium = s.classes.find((c) => c.name === 'premium')!;
  assert.ok(premium.served >= 14);
  assert.equal(typeof premium.rejected.queue_timeout, 'number');
  assert.equal(s.classes.find((c) => c.name === 'impatient')!.rejected.queue_timeout, 1);
  assert.equal(s.upstreams.length, 1);
  const { targets, ...u } = s.upstreams[0] as Status['upstreams'][0] & { targets: unknown[] };
  assert.deepEqual(u, { name: 'fragile', inFlight: 0, maxConcurrent: 4, queued: 0 });
  assert.deepEqual(targets, [{ url: backend.url, weight: 1, ejected: false, consecutiveFailures: 0, ejections: 0, active: 0, healthy: true }]);
});
