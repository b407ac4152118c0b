/**
 * Issue 16 item 7: W3C Trace Context for traces sluice restarts or cannot
 * parse, and the OpenTelemetry HTTP semantic conventions for failed requests,
 * checked against a real OTLP receiver and an upstream that answers any status.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startSluice, type RunningSluice } from '../helpers/sluice.js';
import { startOtlpReceiver, SpanKind, StatusCode, type OtlpReceiver } from '../helpers/otlp-receiver.js';
import { getJson, waitFor } from '../helpers/net.js';
import { closedPort } from '../helpers/net.js';

let upstream: Server;
let upstreamUrl = '';
let receiver: OtlpReceiver;
let sluice: RunningSluice;

before(async () => {
  // Echoes the headers it got; answers ?status=N; /slow never answers in time.
  upstream = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname === '/slow') return void setTimeout(() => res.end('late'), 3000).unref();
    res.writeHead(Number(u.searchParams.get('status') ?? 200), { 'content-type': 'application/json' });
    res.end(JSON.stringify({ headers: req.headers }));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  receiver = await startOtlpReceiver();
  const dead = await closedPort();
  sluice = await startSluice(
    `upstreams:
  - { name: app, targets: [${upstreamUrl}], timeout: 500ms }
  - { name: dead, targets: [http://127.0.0.1:${dead}] }
routes:
  - { name: down, match: { pathPrefix: /down }, upstream: dead }
  - { name: api, match: { pathPrefix: / }, upstream: app }
`,
    [],
    {
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '50',
      OTEL_TRACES_SAMPLER: 'parentbased_always_on',
    },
  );
});

after(async () => {
  await waitFor(async () => {
    const s = await getJson<{ inFlight: number; queued: number }>(`${sluice.admin}/status`);
    return s.inFlight === 0 && s.queued === 0;
  });
  await sluice.stop();
  await receiver.close();
  await new Promise<void>((r) => upstream.close(() => r()));
});

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

async function send(path: string, headers: Record<string, string>): Promise<{ status: number; up: Record<string, string> | undefined }> {
  const r = await fetch(`${sluice.url}${path}`, { headers });
  const text = await r.text();
  let up: Record<string, string> | undefined;
  try {
    up = (JSON.parse(text) as { headers?: Record<string, string> }).headers;
  } catch {
    up = undefined;
  }
  return { status: r.status, up };
}

const serverSpan = async (path: string) => (await receiver.waitFor((s) => s.kind === SpanKind.SERVER && s.attributes['url.path'] === path))[0]!;
const clientSpanOf = async (traceId: string) => (await receiver.waitFor((s) => s.kind === SpanKind.CLIENT && s.traceId === traceId))[0]!;

test('a valid traceparent is continued and its tracestate passed on', async () => {
  const r = await send('/valid', { traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7' });
  const tp = r.up!.traceparent!;
  assert.match(tp, new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
  assert.equal(r.up!.tracestate, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7');
  const server = await serverSpan('/valid');
  assert.equal(server.traceId, TRACE);
  assert.equal(server.parentSpanId, PARENT);
});

test('invalid traceparents restart the trace with a new trace id, and their tracestate is not passed on', async () => {
  const invalid = [
    `ff-${TRACE}-${PARENT}-01`, // version ff is invalid
    `00-${TRACE.toUpperCase()}-${PARENT}-01`, // upper-case hex
    `00-${'0'.repeat(32)}-${PARENT}-01`, // all-zero trace id
    `00-${TRACE}-${'0'.repeat(16)}-01`, // all-zero parent id
    `00-${TRACE}-${PARENT}-01-extra`, // version 00 has exactly four fields
    `00-${TRACE}-${PARENT}`, // too short
    `00-${TRACE.slice(1)}-${PARENT}-01`, // wrong length
    `0-${TRACE}-${PARENT}-01`,
    'garbage',
  ];
  for (const [i, tp] of invalid.entries()) {
    const path = `/invalid-${i}`;
    const r = await send(path, { traceparent: tp, tracestate: 'vendor=leaked' });
    assert.equal(r.status, 200);
    const sent = r.up!.traceparent!;
    assert.match(sent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/, `${tp}: upstream got ${sent}`);
    assert.notEqual(sent.slice(3, 35), TRACE, `${tp}: the trace must restart with a new id`);
    assert.equal(r.up!.tracestate, undefined, `${tp}: a tracestate without a valid parent must not travel`);
    const server = await serverSpan(path);
    assert.equal(server.parentSpanId, '', `${tp}: a restarted trace is a root`);
    assert.equal(server.traceState, '');
  }
});

test('two traceparent headers are invalid together: the trace restarts', async () => {
  const h = new Headers();
  h.append('traceparent', `00-${TRACE}-${PARENT}-01`);
  h.append('traceparent', `00-${'1'.repeat(32)}-${PARENT}-01`);
  const r = await fetch(`${sluice.url}/twice`, { headers: h });
  const up = ((await r.json()) as { headers: Record<string, string> }).headers;
  assert.notEqual(up.traceparent!.slice(3, 35), TRACE);
  assert.equal((await serverSpan('/twice')).parentSpanId, '');
});

test('a future version is parsed by its first four fields (and extra fields ignored)', async () => {
  const r = await send('/future', { traceparent: `cc-${TRACE}-${PARENT}-01-what-the-future-holds`, tracestate: 'future=1' });
  assert.match(r.up!.traceparent!, new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
  assert.equal(r.up!.tracestate, 'future=1');
  assert.equal((await serverSpan('/future')).parentSpanId, PARENT);
});

test('a valid parent with an invalid tracestate member: the member is dropped, the rest kept', async () => {
  const r = await send('/state', { traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: 'good=1,BAD KEY=2,also=3' });
  assert.match(r.up!.traceparent!, new RegExp(`^00-${TRACE}-`));
  assert.equal(r.up!.tracestate, 'good=1,also=3');
});

test('semantic conventions: upstream 5xx is an error on SERVER and CLIENT spans, with error.type', async () => {
  const r = await send('/fail?status=503', {});
  assert.equal(r.status, 503);
  const server = await serverSpan('/fail');
  assert.equal(server.attributes['http.response.status_code'], 503);
  assert.equal(server.attributes['error.type'], '503');
  assert.equal(server.status.code, StatusCode.ERROR);
  const client = await clientSpanOf(server.traceId);
  assert.equal(client.attributes['http.response.status_code'], 503);
  assert.equal(client.attributes['error.type'], '503');
  assert.equal(client.status.code, StatusCode.ERROR);
});

test('semantic conventions: upstream 4xx is an error on the CLIENT span only', async () => {
  for (const status of [400, 404, 429]) {
    const path = `/client-error-${status}`;
    const r = await send(`${path}?status=${status}`, {});
    assert.equal(r.status, status);
    const server = await serverSpan(path);
    assert.equal(server.attributes['http.response.status_code'], status);
    assert.equal(server.attributes['error.type'], undefined);
    assert.equal(server.status.code, StatusCode.UNSET);
    const client = await clientSpanOf(server.traceId);
    assert.equal(client.attributes['error.type'], String(status));
    assert.equal(client.status.code, StatusCode.ERROR);
  }
});

test('semantic conventions: no answer from the upstream (refused, timeout) sets error.type on both spans', async () => {
  const refused = await send('/down', {});
  assert.equal(refused.status, 502);
  const s1 = await serverSpan('/down');
  assert.equal(s1.attributes['error.type'], '502');
  assert.equal(s1.status.code, StatusCode.ERROR);
  const c1 = await clientSpanOf(s1.traceId);
  assert.equal(c1.attributes['error.type'], 'upstream_error');
  assert.equal(c1.attributes['http.response.status_code'], undefined, 'no upstream answer: no status code on the CLIENT span');
  assert.equal(c1.status.code, StatusCode.ERROR);

  const slow = await send('/slow', {});
  assert.equal(slow.status, 504);
  const s2 = await serverSpan('/slow');
  assert.equal(s2.attributes['error.type'], '504');
  const c2 = await clientSpanOf(s2.traceId);
  assert.equal(c2.attributes['error.type'], 'timeout');
  assert.equal(c2.status.code, StatusCode.ERROR);
});

test('a successful request has no error.type and an unset status', async () => {
  const r = await send('/fine', {});
  assert.equal(r.status, 200);
  const server = await serverSpan('/fine');
  assert.equal(server.attributes['error.type'], undefined);
  assert.equal(server.status.code, StatusCode.UNSET);
  const client = await clientSpanOf(server.traceId);
  assert.equal(client.attributes['error.type'], undefined);
  assert.equal(client.status.code, StatusCode.UNSET);
});
