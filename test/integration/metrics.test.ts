/**
 * GET /metrics after known traffic: sluice as a child process, a real backend,
 * the exposition parsed with a real Prometheus text parser.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startSluice, type RunningSluice } from '../helpers/sluice.js';
import { parseMetrics, type Scrape } from '../helpers/prom.js';

function policy(backend: string): string {
  return `upstreams:
  - name: app
    targets: [${backend}]
    maxConcurrent: 1
routes:
  - name: api
    match: { pathPrefix: /api }
    upstream: app
  - name: bytes
    match: { pathPrefix: /bytes }
    upstream: app
classes:
  - name: limited
    priority: 0
    match: { headers: { x-test: limited } }
    rateLimit: { rate: 2, per: 1m, burst: 2, key: class }
  - name: shaped
    priority: 0
    match: { headers: { x-test: shaped } }
    bandwidth: { download: 2MiB/s }
  - name: premium
    priority: 0
    match: { headers: { x-tier: premium } }
    queue: { size: 10, timeout: 5s }
  - name: noqueue
    priority: 1
    match: { headers: { x-test: noqueue } }
    queue: { size: 0, timeout: 1s }
  - name: free
    priority: 2
    queue: { size: 10, timeout: 5s }
defaultClass: free
`;
}

async function status(url: string, headers: Record<string, string> = {}): Promise<number> {
  const r = await fetch(url, { headers });
  await r.arrayBuffer();
  return r.status;
}

async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('GET /metrics', { timeout: 60_000 }, () => {
  let backend: Backend;
  let sluice: RunningSluice;
  const scrape = async (): Promise<Scrape> => {
    const r = await fetch(`${sluice.admin}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return parseMetrics(await r.text());
  };

  before(async () => {
    backend = await startBackend();
    // No OTEL_* tracing: metrics are on regardless.
    sluice = await startSluice(policy(backend.url), [], { OTEL_TRACES_EXPORTER: 'none', OTEL_SERVICE_NAME: 'metrics-test' });
  });

  after(async () => {
    await sluice?.stop();
    await backend?.close();
  });

  test('declares every instrument with its type before any traffic', async () => {
    const m = await scrape();
    assert.equal(m.types.get('sluice_class_queued'), 'gauge');
    assert.equal(m.types.get('sluice_upstream_in_flight'), 'gauge');
    assert.equal(m.value('sluice_upstream_max_concurrent', { sluice_upstream: 'app' }), 1);
    assert.equal(m.value('sluice_class_in_flight', { sluice_class: 'premium' }), 0);
    assert.equal(m.value('target_info', { service_name: 'metrics-test' }), 1);
  });

  test('counts requests by class and outcome, queue waits and latencies after known traffic', async () => {
    for (let i = 0; i < 4; i++) assert.equal(await status(`${sluice.url}/api/p${i}`, { 'x-tier': 'premium' }), 200);
    for (let i = 0; i < 3; i++) assert.equal(await status(`${sluice.url}/api/f${i}`), 200);
    assert.equal(await status(`${sluice.url}/nowhere`), 404);

    // Occupy the only upstream slot, then: two rejections (queue size 0) and one queued premium request.
    const slow = status(`${sluice.url}/api/slow?delay=400`);
    await until(() => backend.inFlight === 1);
    assert.equal(await status(`${sluice.url}/api/r1`, { 'x-test': 'noqueue' }), 503);
    assert.equal(await status(`${sluice.url}/api/r2`, { 'x-test': 'noqueue' }), 503);
    const queued = status(`${sluice.url}/api/queued`, { 'x-tier': 'premium' });

    // While it waits: the gauges show it.
    await until(async () => (await scrape()).value('sluice_class_queued', { sluice_class: 'premium' }) === 1);
    const during = await scrape();
    assert.equal(during.value('sluice_class_in_flight', { sluice_class: 'free' }), 1);
    assert.equal(during.value('sluice_upstream_in_flight', { sluice_upstream: 'app' }), 1);
    assert.equal(during.value('sluice_upstream_queued', { sluice_upstream: 'app' }), 1);

    assert.equal(await slow, 200);
    assert.equal(await queued, 200);

    const m = await scrape();
    const req = (cls: string, outcome: string) => m.value('sluice_requests_total', { sluice_class: cls, sluice_outcome: outcome });
    assert.equal(m.types.get('sluice_requests_total'), 'counter');
    assert.equal(req('premium', 'forwarded'), 5);
    assert.equal(req('free', 'forwarded'), 4);
    assert.equal(req('noqueue', 'queue_full'), 2);
    assert.equal(req('', 'no_route'), 1);
    const total = m.find('sluice_requests_total').reduce((n, s) => n + s.value, 0);
    assert.equal(total, 12);

    // Queue wait: every request that reached the scheduler, per class.
    assert.equal(m.types.get('sluice_queue_wait_seconds'), 'histogram');
    assert.equal(m.value('sluice_queue_wait_seconds_count', { sluice_class: 'premium' }), 5);
    assert.equal(m.value('sluice_queue_wait_seconds_count', { sluice_class: 'free' }), 4);
    assert.equal(m.value('sluice_queue_wait_seconds_count', { sluice_class: 'noqueue' }), 2);
    const premiumWait = m.value('sluice_queue_wait_seconds_sum', { sluice_class: 'premium' })!;
    assert.ok(premiumWait >= 0.2, `the queued premium request waited behind a 400 ms one (sum ${premiumWait} s)`);
    // Four premium requests went straight through, one waited a few hundred ms.
    assert.equal(m.value('sluice_queue_wait_seconds_bucket', { sluice_class: 'premium', le: '0.1' }), 4);
    assert.equal(m.value('sluice_queue_wait_seconds_bucket', { sluice_class: 'premium', le: '+Inf' }), 5);

    // Total latency by class and outcome; buckets are cumulative.
    assert.equal(m.value('sluice_request_duration_seconds_count', { sluice_class: 'free', sluice_outcome: 'forwarded' }), 4);
    assert.equal(m.value('sluice_request_duration_seconds_count', { sluice_class: 'noqueue', sluice_outcome: 'queue_full' }), 2);
    const buckets = m.find('sluice_request_duration_seconds_bucket', { sluice_class: 'free', sluice_outcome: 'forwarded' });
    assert.ok(buckets.length >= 10);
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, 'cumulative buckets');
    assert.equal(buckets.at(-1)!.labels.le, '+Inf');
    assert.equal(buckets.at(-1)!.value, 4);
    // The slow request is in the 250..500 ms range.
    assert.equal(m.value('sluice_request_duration_seconds_bucket', { sluice_class: 'free', sluice_outcome: 'forwarded', le: '0.25' }), 3);

    // Everything finished: gauges back to zero.
    assert.equal(m.value('sluice_class_queued', { sluice_class: 'premium' }), 0);
    assert.equal(m.value('sluice_class_in_flight', { sluice_class: 'free' }), 0);
    assert.equal(m.value('sluice_upstream_in_flight', { sluice_upstream: 'app' }), 0);
  });

  test('rate-limit rejections are requests with outcome rate_limited', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) codes.push(await status(`${sluice.url}/api/l${i}`, { 'x-test': 'limited' }));
    assert.deepEqual(codes, [200, 200, 429, 429, 429]);
    const m = await scrape();
    assert.equal(m.value('sluice_requests_total', { sluice_class: 'limited', sluice_outcome: 'forwarded' }), 2);
    assert.equal(m.value('sluice_requests_total', { sluice_class: 'limited', sluice_outcome: 'rate_limited' }), 3);
    assert.equal(m.value('sluice_request_duration_seconds_count', { sluice_class: 'limited', sluice_outcome: 'rate_limited' }), 3);
  });

  test('bytes through a class bandwidth shaper are counted', async () => {
    const before = (await scrape()).value('sluice_shaped_bytes_total', { sluice_class: 'shaped', sluice_direction: 'download' }) ?? 0;
    const r = await fetch(`${sluice.url}/bytes?n=300000`, { headers: { 'x-test': 'shaped' } });
    assert.equal(r.status, 200);
    assert.equal((await r.arrayBuffer()).byteLength, 300000);
    const m = await scrape();
    assert.equal(m.types.get('sluice_shaped_bytes_total'), 'counter');
    assert.equal(m.value('sluice_shaped_bytes_total', { sluice_class: 'shaped', sluice_direction: 'download' })! - before, 300000);
    assert.equal(m.value('sluice_requests_total', { sluice_class: 'shaped', sluice_outcome: 'forwarded' }), 1);
  });
});

test('telemetry.legacyMetricNames: true exports the 0.1 names (ms, no unit suffix) next to the new ones, with the same counts', async () => {
  const backend = await startBackend();
  const s = await startSluice(`${policy(backend.url)}telemetry: { legacyMetricNames: true }\n`, [], { OTEL_TRACES_EXPORTER: 'none' });
  try {
    for (let i = 0; i < 3; i++) assert.equal(await status(`${s.url}/api/x${i}?delay=30`), 200);
    const r = await fetch(`${s.url}/bytes?n=1000`, { headers: { 'x-test': 'shaped' } });
    await r.arrayBuffer();
    const m = parseMetrics(await (await fetch(`${s.admin}/metrics`)).text());
    const free = { sluice_class: 'free', sluice_outcome: 'forwarded' };
    assert.equal(m.types.get('sluice_request_duration'), 'histogram');
    assert.equal(m.value('sluice_request_duration_count', free), 3);
    assert.equal(m.value('sluice_request_duration_seconds_count', free), 3);
    const ms = m.value('sluice_request_duration_sum', free)!;
    const sec = m.value('sluice_request_duration_seconds_sum', free)!;
    assert.ok(ms >= 90 && Math.abs(ms / 1000 - sec) < 1e-6, `legacy sum ${ms} ms, new sum ${sec} s`);
    assert.equal(m.value('sluice_queue_wait_count', { sluice_class: 'free' }), m.value('sluice_queue_wait_seconds_count', { sluice_class: 'free' }));
    const shaped = { sluice_class: 'shaped', sluice_direction: 'download' };
    assert.equal(m.value('sluice_shaped_total', shaped), 1000);
    assert.equal(m.value('sluice_shaped_bytes_total', shaped), 1000);
    await drained(s);
  } finally {
    await s.stop();
    await backend.close();
  }
});

test('without the flag only the unit-suffixed names are exported', async () => {
  const backend = await startBackend();
  const s = await startSluice(policy(backend.url), [], { OTEL_TRACES_EXPORTER: 'none' });
  try {
    assert.equal(await status(`${s.url}/api/x`), 200);
    const m = parseMetrics(await (await fetch(`${s.admin}/metrics`)).text());
    assert.equal(m.types.get('sluice_request_duration_seconds'), 'histogram');
    assert.equal(m.types.get('sluice_request_duration'), undefined);
    assert.equal(m.types.get('sluice_queue_wait'), undefined);
    assert.equal(m.types.get('sluice_shaped_total'), undefined);
    await drained(s);
  } finally {
    await s.stop();
    await backend.close();
  }
});

/** Every in-flight and queued count is back to zero. */
async function drained(s: RunningSluice): Promise<void> {
  await until(async () => {
    const st = (await (await fetch(`${s.admin}/status`)).json()) as { inFlight: number; queued: number };
    return st.inFlight === 0 && st.queued === 0;
  });
}
