/**
 * gRPC end to end: a real @grpc/grpc-js client → sluice (h2c and TLS inbound) →
 * a real @grpc/grpc-js server over an h2c upstream. Messages, metadata,
 * trailers, deadlines, classification by service/method path, and sluice's own
 * refusals as gRPC statuses.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSluice, type RunningSluice } from '../helpers/sluice.js';
import { closedPort, getJson, waitFor } from '../helpers/net.js';
import { makePki, type Pki } from '../helpers/pki.js';
import { echoClient, startGrpcServer, grpc, type EchoClient, type GrpcServer } from '../helpers/grpc.js';

interface Status {
  classes: { name: string; inFlight: number; queued: number; served: number; rejected: Record<string, number> }[];
  upstreams: { name: string; inFlight: number }[];
}

let pki: Pki;
let server: GrpcServer;
let sluice: RunningSluice;
let h2c: EchoClient;
let tls: EchoClient;

before(async () => {
  pki = await makePki();
  server = await startGrpcServer();
  const dead = await closedPort();
  sluice = await startSluice(`listen:
  - { host: 127.0.0.1, port: 0 }
  - { host: 127.0.0.1, port: 0, tls: { cert: ${pki.server.certFile}, key: ${pki.server.keyFile} } }
upstreams:
  - name: grpc
    targets: [http://127.0.0.1:${server.port}]
    protocol: h2c
    maxConcurrent: 8
  - name: dead
    targets: [http://127.0.0.1:${dead}]
    protocol: h2c
routes:
  - match: { pathPrefix: /echo.Echo/, headers: { x-route: dead } }
    upstream: dead
  - match: { pathPrefix: /echo.Echo/, headers: { x-route: { present: false } } }
    upstream: grpc
classes:
  - name: limited
    match: { headers: { x-class: limited } }
    rateLimit: { rate: 1, per: 1m, burst: 1, key: class }
  - name: tight
    match: { headers: { x-class: tight } }
    concurrency: 1
    queue: { size: 0 }
  - name: waiting
    match: { headers: { x-class: waiting } }
    concurrency: 1
    queue: { size: 5, timeout: 300ms }
  - name: patient
    match: { headers: { x-class: patient } }
    concurrency: 1
    queue: { size: 5, timeout: 10s }
  - name: streams
    match: { path: /echo.Echo/Stream }
  - name: unary
    match: { pathRegex: "^/echo\\\\.Echo/Unary$" }
defaultClass: unary
`);
  h2c = echoClient(sluice.url.replace('http://', ''));
  tls = echoClient(sluice.also[0]!.replace('https://', ''), pki.ca);
});

after(async () => {
  h2c.close();
  tls.close();
  await sluice.stop();
  await server.close();
});

async function idle(): Promise<void> {
  await waitFor(async () => {
    const s = await getJson<Status>(`${sluice.admin}/status`);
    return s.upstreams.every((u) => u.inFlight === 0) && s.classes.every((c) => c.queued === 0 && c.inFlight === 0);
  }, 10_000, 'the proxy to be idle');
}

const served = async (name: string): Promise<number> =>
  (await getJson<Status>(`${sluice.admin}/status`)).classes.find((c) => c.name === name)!.served;

for (const via of ['h2c', 'tls'] as const) {
  test(`unary over ${via}: message, request metadata, response trailers arrive intact`, async () => {
    const c = via === 'h2c' ? h2c : tls;
    const before = await served('unary');
    const r = await c.unary({ message: 'hi' }, { metadata: { 'x-caller': 'tester' } });
    assert.equal(r.error, undefined, String(r.error));
    assert.equal(r.reply?.message, 'echo:hi from tester');
    assert.deepEqual(r.trailers?.get('x-trailer'), ['bye']);
    assert.ok((await served('unary')) > before, 'classified by method path as unary');
    await idle();
  });

  test(`server streaming over ${via}: every message, header metadata and trailers`, async () => {
    const c = via === 'h2c' ? h2c : tls;
    const before = await served('streams');
    const r = await c.stream({ message: 'm', count: 5, delay_ms: 10 });
    assert.equal(r.error, undefined, String(r.error));
    assert.deepEqual(r.replies.map((x) => x.message), ['m#0', 'm#1', 'm#2', 'm#3', 'm#4']);
    assert.equal(r.status?.code, grpc.status.OK);
    assert.deepEqual(r.headers?.get('x-header'), ['hello']);
    assert.deepEqual(r.status?.metadata.get('x-trailer'), ['sent 5']);
    assert.ok((await served('streams')) > before, 'classified by method path as streams');
    await idle();
  });

  test(`upstream gRPC errors over ${via}: grpc-status and grpc-message relayed (trailers-only and after messages)`, async () => {
    const c = via === 'h2c' ? h2c : tls;
    const u = await c.unary({ message: 'x', fail_code: grpc.status.NOT_FOUND });
    assert.equal(u.error?.code, grpc.status.NOT_FOUND);
    assert.equal(u.error?.details, 'failed as asked: x');
    const s = await c.stream({ message: 's', count: 2, fail_code: grpc.status.PERMISSION_DENIED });
    assert.equal(s.replies.length, 2);
    assert.equal(s.status?.code, grpc.status.PERMISSION_DENIED);
    assert.equal(s.status?.details, 'stream failed as asked after 2');
    await idle();
  });
}

test('a client deadline (grpc-timeout) ends the call upstream too; counts return to zero', async () => {
  const t0 = Date.now();
  const r = await h2c.unary({ message: 'slow', delay_ms: 5000 }, { deadlineMs: 300 });
  assert.equal(r.error?.code, grpc.status.DEADLINE_EXCEEDED);
  assert.ok(Date.now() - t0 < 3000, 'the deadline, not the server, ended the call');
  await waitFor(() => server.active === 0, 5000, 'the server to see the cancellation');
  await idle();
});

test('a client that cancels a server stream mid-way cancels it upstream; counts return to zero', async () => {
  for (const c of [h2c, tls]) {
    const st = await c.cancelStream({ message: 'long', count: 1000, delay_ms: 20 }, 3);
    assert.equal(st.code, grpc.status.CANCELLED);
    await waitFor(() => server.active === 0, 5000, 'the server to see the cancellation');
  }
  await idle();
});

test('a call whose deadline passes while queued leaves the queue and never reaches the server', async () => {
  const slow = h2c.unary({ message: 'hold', delay_ms: 1500 }, { metadata: { 'x-class': 'patient' } });
  await waitFor(() => server.active === 1, 5000, 'the slow call to reach the server');
  const callsBefore = server.calls.length;
  const t0 = Date.now();
  const late = await tls.unary({ message: 'late' }, { deadlineMs: 300, metadata: { 'x-class': 'patient' } });
  assert.equal(late.error?.code, grpc.status.DEADLINE_EXCEEDED);
  assert.ok(Date.now() - t0 < 1400, 'the deadline, not the queue, ended the call');
  await waitFor(async () => {
    const s = await getJson<Status>(`${sluice.admin}/status`);
    return s.classes.find((c) => c.name === 'patient')!.queued === 0;
  }, 5000, 'the queue to empty');
  assert.equal((await slow).error, undefined);
  assert.equal(server.calls.length, callsBefore, 'the expired call never reached the server');
  await idle();
});

test('sluice refusals reach grpc-js as gRPC statuses', async () => {
  // Rate limit → RESOURCE_EXHAUSTED
  const first = await h2c.unary({ message: 'a' }, { metadata: { 'x-class': 'limited' } });
  assert.equal(first.error, undefined, String(first.error));
  const limited = await tls.unary({ message: 'b' }, { metadata: { 'x-class': 'limited' } });
  assert.equal(limited.error?.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.match(limited.error!.details, /rate/i);

  // No route → UNIMPLEMENTED
  const noRoute = await h2c.unary({ message: 'c' }, { metadata: { 'x-route': 'nowhere' } });
  assert.equal(noRoute.error?.code, grpc.status.UNIMPLEMENTED);

  // Upstream down → UNAVAILABLE
  const down = await tls.unary({ message: 'd' }, { metadata: { 'x-route': 'dead' } });
  assert.equal(down.error?.code, grpc.status.UNAVAILABLE);
  assert.match(down.error!.details, /unreachable/);

  // Queue full → UNAVAILABLE (one in flight, no queue)
  const slow = h2c.unary({ message: 'e', delay_ms: 600 }, { metadata: { 'x-class': 'tight' } });
  await waitFor(() => server.active === 1, 5000, 'the slow call to reach the server');
  const full = await h2c.unary({ message: 'f' }, { metadata: { 'x-class': 'tight' } });
  assert.equal(full.error?.code, grpc.status.UNAVAILABLE);
  assert.equal((await slow).error, undefined);

  // Queue timeout → DEADLINE_EXCEEDED (waited 300 ms behind a 1 s call)
  const slow2 = h2c.unary({ message: 'g', delay_ms: 1000 }, { metadata: { 'x-class': 'waiting' } });
  await waitFor(() => server.active === 1, 5000, 'the slow call to reach the server');
  const waited = await tls.unary({ message: 'h' }, { metadata: { 'x-class': 'waiting' } });
  assert.equal(waited.error?.code, grpc.status.DEADLINE_EXCEEDED);
  assert.match(waited.error!.details, /queue/);
  assert.equal((await slow2).error, undefined);
  await idle();
});
