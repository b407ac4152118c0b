/**
 * Tracing end to end: sluice as a child process exporting OTLP/HTTP (json and
 * protobuf) to a real receiver, a real backend, real sockets. Checks the span
 * tree, attributes, parent links and that traceparent reaches the backend.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:http2';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startSluice, type RunningSluice } from '../helpers/sluice.js';
import { startOtlpReceiver, SpanKind, StatusCode, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.js';

function policy(backend: string): string {
  return `upstreams:
  - name: app
    targets: [${backend}]
    maxConcurrent: 1
routes:
  - name: api
    match: { pathPrefix: / }
    upstream: app
classes:
  - name: shaped
    priority: 0
    match: { headers: { x-test: shaped } }
    bandwidth: { download: 1MiB/s }
  - name: queued
    priority: 0
    match: { headers: { x-test: queued } }
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

function otelEnv(receiver: OtlpReceiver, protocol: string): NodeJS.ProcessEnv {
  return {
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
    OTEL_SERVICE_NAME: 'sluice-under-test',
    OTEL_BSP_SCHEDULE_DELAY: '50',
    OTEL_TRACES_SAMPLER: 'parentbased_always_on',
  };
}

interface Echo {
  headers: Record<string, string>;
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Headers }> {
  const r = await fetch(url, { headers });
  return { status: r.status, body: await r.text(), headers: r.headers };
}

/** traceparent: version-traceid-spanid-flags */
function parseTraceparent(v: string | undefined): { traceId: string; spanId: string; flags: string } {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(v ?? '');
  assert.ok(m, `not a traceparent: ${v}`);
  return { traceId: m[1]!, spanId: m[2]!, flags: m[3]! };
}

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The spans of one trace with the given SERVER span path. */
async function traceOf(receiver: OtlpReceiver, path: string, n: number): Promise<{ server: ReceivedSpan; all: ReceivedSpan[] }> {
  const [server] = await receiver.waitFor((s) => s.kind === SpanKind.SERVER && s.attributes['url.path'] === path);
  const all = await receiver.waitFor((s) => s.traceId === server!.traceId, n);
  return { server: server!, all };
}

function child(all: ReceivedSpan[], parent: ReceivedSpan, name: string): ReceivedSpan | undefined {
  return all.find((s) => s.parentSpanId === parent.spanId && s.name === name);
}

for (const protocol of ['http/json', 'http/protobuf'] as const) {
  describe(`tracing over OTLP ${protocol}`, { timeout: 60_000 }, () => {
    let backend: Backend;
    let receiver: OtlpReceiver;
    let sluice: RunningSluice;

    before(async () => {
      backend = await startBackend();
      receiver = await startOtlpReceiver();
      sluice = await startSluice(policy(backend.url), [], otelEnv(receiver, protocol));
    });

    after(async () => {
      await sluice?.stop();
      await receiver?.close();
      await backend?.close();
    });

    test('a forwarded request: SERVER span with queue and CLIENT children; backend joins the trace', async () => {
      const r = await get(`${sluice.url}/hello?x=1`, { 'user-agent': 'tracing-test' });
      assert.equal(r.status, 200);
      const upstreamTp = parseTraceparent((JSON.parse(r.body) as Echo).headers.traceparent);

      const { server, all } = await traceOf(receiver, '/hello', 3);
      assert.equal(all.length, 3, all.map((s) => s.name).join(', '));
      assert.equal(server.name, 'GET api');
      assert.equal(server.parentSpanId, '', 'no incoming traceparent: a root span');
      assert.equal(server.scope, 'sluice');
      assert.equal(server.resource['service.name'], 'sluice-under-test');
      const a = server.attributes;
      assert.equal(a['http.request.method'], 'GET');
      assert.equal(a['url.path'], '/hello');
      assert.equal(a['http.response.status_code'], 200);
      assert.equal(a['server.address'], '127.0.0.1');
      assert.equal(a['client.address'], '127.0.0.1');
      assert.equal(a['network.protocol.version'], '1.1');
      assert.equal(a['http.route'], 'api');
      assert.equal(a['user_agent.original'], 'tracing-test');
      assert.equal(a['sluice.class'], 'free');
      assert.equal(a['sluice.priority'], 2);
      assert.equal(a['sluice.outcome'], 'forwarded');
      assert.equal(typeof a['sluice.queue.wait_ms'], 'number');
      assert.ok((a['sluice.queue.wait_ms'] as number) < 100);
      assert.equal(typeof a['sluice.response.transfer_ms'], 'number');
      assert.equal(a['http.response.body.size'], Buffer.byteLength(r.body), 'body bytes sent to the client');
      assert.notEqual(server.status.code, StatusCode.ERROR);

      const queue = child(all, server, 'queue');
      assert.ok(queue, 'queue span is a child of the SERVER span');
      assert.equal(queue.kind, SpanKind.INTERNAL);
      assert.equal(queue.attributes['sluice.granted'], true);
      assert.ok(queue.startMs >= server.startMs && queue.endMs <= server.endMs, 'queue span inside the SERVER span');

      const client = all.find((s) => s.kind === SpanKind.CLIENT);
      assert.ok(client);
      assert.equal(client.parentSpanId, server.spanId);
      assert.equal(client.name, 'GET');
      assert.equal(client.attributes['http.response.status_code'], 200);
      assert.equal(client.attributes['sluice.upstream'], 'app');
      assert.equal(client.attributes['server.address'], '127.0.0.1');
      assert.equal(client.attributes['server.port'], backend.port);
      assert.ok(client.events.some((e) => e.name === 'response.headers'));
      assert.ok(client.startMs >= queue.endMs - 0.01, 'the upstream call starts after the queue wait');
      assert.ok(client.endMs <= server.endMs + 0.01);

      // The backend saw the CLIENT span as its parent, in the same trace.
      assert.equal(upstreamTp.traceId, server.traceId);
      assert.equal(upstreamTp.spanId, client.spanId);
      assert.equal(upstreamTp.flags, '01');
    });

    test('an incoming traceparent is continued and tracestate passed on', async () => {
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      const parent = '00f067aa0ba902b7';
      const r = await get(`${sluice.url}/continued`, { traceparent: `00-${traceId}-${parent}-01`, tracestate: 'vendor=abc' });
      assert.equal(r.status, 200);
      const echo = JSON.parse(r.body) as Echo;
      const tp = parseTraceparent(echo.headers.traceparent);
      assert.equal(tp.traceId, traceId);
      assert.notEqual(tp.spanId, parent, 'the backend gets our CLIENT span as parent, not the caller');
      assert.equal(echo.headers.tracestate, 'vendor=abc');

      const { server, all } = await traceOf(receiver, '/continued', 3);
      assert.equal(server.traceId, traceId);
      assert.equal(server.parentSpanId, parent);
      assert.equal(server.traceState, 'vendor=abc');
      const client = all.find((s) => s.kind === SpanKind.CLIENT)!;
      assert.equal(tp.spanId, client.spanId);
    });

    test('HTTP/2 (h2c): protocol version 2, body size counted, traceparent injected', async () => {
      const session = connect(sluice.url);
      try {
        const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
          const s = session.request({ ':path': '/over-h2', ':method': 'GET' });
          let status = 0;
          let body = '';
          s.on('response', (h) => (status = Number(h[':status'])));
          s.setEncoding('utf8').on('data', (d: string) => (body += d));
          s.on('end', () => resolve({ status, body }));
          s.on('error', reject);
        });
        assert.equal(status, 200);
        const tp = parseTraceparent((JSON.parse(body) as Echo).headers.traceparent);
        const { server, all } = await traceOf(receiver, '/over-h2', 3);
        assert.equal(server.attributes['network.protocol.version'], '2');
        assert.equal(server.attributes['http.response.body.size'], Buffer.byteLength(body));
        assert.equal(tp.traceId, server.traceId);
        assert.equal(tp.spanId, all.find((s) => s.kind === SpanKind.CLIENT)!.spanId);
      } finally {
        session.close();
      }
    });

    test('a shaped download: body size and transfer time on the SERVER span', async () => {
      const r = await fetch(`${sluice.url}/bytes?n=400000`, { headers: { 'x-test': 'shaped' } });
      assert.equal(r.status, 200);
      assert.equal((await r.arrayBuffer()).byteLength, 400000);
      const { server } = await traceOf(receiver, '/bytes', 3);
      assert.equal(server.attributes['sluice.class'], 'shaped');
      assert.equal(server.attributes['http.response.body.size'], 400000);
      // 1 MiB/s with a ~100 KiB burst: the last ~290 KB take ~280 ms.
      const transfer = server.attributes['sluice.response.transfer_ms'] as number;
      assert.ok(transfer >= 150, `transfer took ${transfer} ms`);
    });

    test('a queued request: the queue span covers the wait', async () => {
      const slow = get(`${sluice.url}/slow?delay=300`);
      await until(() => backend.inFlight === 1);
      const queued = await get(`${sluice.url}/after-wait`, { 'x-test': 'queued' });
      assert.equal(queued.status, 200);
      assert.equal((await slow).status, 200);

      const { server, all } = await traceOf(receiver, '/after-wait', 3);
      assert.equal(server.attributes['sluice.class'], 'queued');
      assert.equal(server.attributes['sluice.priority'], 0);
      assert.equal(server.attributes['sluice.outcome'], 'forwarded');
      const wait = server.attributes['sluice.queue.wait_ms'] as number;
      assert.ok(wait >= 150, `waited ${wait} ms behind a 300 ms request`);
      const queue = child(all, server, 'queue')!;
      assert.ok(queue);
      assert.ok(queue.endMs - queue.startMs >= 150, `queue span lasts ${queue.endMs - queue.startMs} ms`);
      assert.equal(queue.attributes['sluice.granted'], true);
      const client = all.find((s) => s.kind === SpanKind.CLIENT)!;
      assert.equal(client.parentSpanId, server.spanId);
      assert.ok(client.startMs >= queue.endMs - 0.01);
    });

    test('a sampled-out request (unsampled parent, parent-based sampler): no span exported, the trace continues upstream unsampled', async () => {
      const traceId = '0af7651916cd43dd8448eb211c80319c';
      const r = await get(`${sluice.url}/unsampled`, { traceparent: `00-${traceId}-b7ad6b7169203331-00` });
      assert.equal(r.status, 200);
      const upstreamTp = parseTraceparent((JSON.parse(r.body) as Echo).headers.traceparent);
      assert.equal(upstreamTp.traceId, traceId);
      assert.equal(upstreamTp.flags, '00');
      // A sampled request after it: once its spans arrive, anything of the unsampled one would have too.
      assert.equal((await get(`${sluice.url}/sampled-after`)).status, 200);
      await traceOf(receiver, '/sampled-after', 3);
      assert.equal(receiver.spans.filter((s) => s.traceId === traceId).length, 0);
    });

    test('a rejected request (queue full): SERVER span with outcome and error, no CLIENT span', async () => {
      const slow = get(`${sluice.url}/slow2?delay=300`);
      await until(() => backend.inFlight === 1);
      const hits = backend.hits.length;
      const rejected = await get(`${sluice.url}/rejected`, { 'x-test': 'noqueue' });
      assert.equal(rejected.status, 503);
      assert.equal((await slow).status, 200);
      assert.equal(backend.hits.length, hits + 0, 'the rejected request never reached the backend');

      const { server, all } = await traceOf(receiver, '/rejected', 2);
      assert.equal(server.attributes['sluice.outcome'], 'queue_full');
      assert.equal(server.attributes['sluice.class'], 'noqueue');
      assert.equal(server.attributes['http.response.status_code'], 503);
      assert.equal(server.status.code, StatusCode.ERROR);
      const queue = child(all, server, 'queue');
      assert.ok(queue);
      assert.equal(queue.attributes['sluice.granted'], false);
      // Give a stray CLIENT span time to arrive, then check there is none.
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(
        receiver.spans.filter((s) => s.traceId === server.traceId && s.kind === SpanKind.CLIENT).length,
        0,
      );
    });

    test('spans are flushed on shutdown', async () => {
      const r = await get(`${sluice.url}/last`);
      assert.equal(r.status, 200);
      assert.equal(await sluice.stop(), 0);
      const [server] = await receiver.waitFor((s) => s.attributes['url.path'] === '/last', 1, 2000);
      assert.ok(server);
      const want = protocol === 'http/json' ? 'application/json' : 'application/x-protobuf';
      assert.ok(receiver.contentTypes.every((c) => c.startsWith(want)), receiver.contentTypes.join(', '));
    });
  });
}

describe('tracing not configured', { timeout: 30_000 }, () => {
  test('no exporter: the incoming traceparent passes through untouched and nothing is sent', async () => {
    const backend = await startBackend();
    const receiver = await startOtlpReceiver();
    // Only the service name: no exporter, no endpoint -> tracing stays off (receiver is never named).
    const sluice = await startSluice(policy(backend.url), [], {
      OTEL_SERVICE_NAME: 'x',
      OTEL_TRACES_EXPORTER: '',
      OTEL_EXPORTER_OTLP_ENDPOINT: '',
    });
    try {
      const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      const r = await get(`${sluice.url}/plain`, { traceparent: tp });
      assert.equal(r.status, 200);
      assert.equal((JSON.parse(r.body) as Echo).headers.traceparent, tp);
      const r2 = await get(`${sluice.url}/plain2`);
      assert.equal((JSON.parse(r2.body) as Echo).headers.traceparent, undefined);
    } finally {
      await sluice.stop();
      await receiver.close();
      await backend.close();
    }
    assert.equal(receiver.spans.length, 0);
  });

  test('OTEL_TRACES_EXPORTER=none wins over an endpoint', async () => {
    const backend = await startBackend();
    const receiver = await startOtlpReceiver();
    const sluice = await startSluice(policy(backend.url), [], {
      OTEL_TRACES_EXPORTER: 'none',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: '50',
    });
    try {
      const r = await get(`${sluice.url}/plain`);
      assert.equal(r.status, 200);
      assert.equal((JSON.parse(r.body) as Echo).headers.traceparent, undefined);
    } finally {
      await sluice.stop();
      await receiver.close();
      await backend.close();
    }
    assert.equal(receiver.spans.length, 0);
  });
});
