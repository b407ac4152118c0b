/**
 * Protocol parity (issue #10): a response the upstream cuts mid-body reads as a
 * failure on HTTP/1.1 and HTTP/2 alike, and a WebSocket handshake goes through
 * the same admission as a request (URL length, rate limit, upstream timeout,
 * outlier feedback, shutdown).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, createServer, type Server } from 'node:net';
import { connect as h2connect, constants } from 'node:http2';
import WebSocket from 'ws';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startSluice, type RunningSluice } from '../helpers/sluice.js';
import { assertDrained } from '../helpers/invariants.js';

let backend: Backend;
let silent: Server;
let sluice: RunningSluice;
let port: number;

before(async () => {
  backend = await startBackend();
  // An upstream that accepts connections and never answers (a hung handshake).
  silent = createServer((s) => s.on('error', () => {}));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const silentPort = (silent.address() as { port: number }).port;
  sluice = await startSluice(`upstreams:
  - name: app
    targets: [${backend.url}]
  - name: mute
    targets: [http://127.0.0.1:${silentPort}]
    timeout: 500ms
routes:
  - match: { pathPrefix: /mute }
    upstream: mute
  - match: { pathPrefix: / }
    upstream: app
limits: { maxUrlLength: 64 }
classes:
  - name: ws
    match: { pathPrefix: /ws-limited }
    rateLimit: { rate: 2, per: 1m, burst: 2, key: class }
  - name: rest
defaultClass: rest
`);
  port = Number(new URL(sluice.url).port);
});

after(async () => {
  await sluice.stop();
  await backend.close();
  await new Promise<void>((r) => silent.close(() => r()));
});

test('upstream cuts the body: HTTP/2 client gets RST_STREAM INTERNAL_ERROR, not NO_ERROR', async () => {
  const session = h2connect(sluice.url);
  session.on('error', () => {});
  const code = await new Promise<number>((resolve) => {
    const s = session.request({ ':path': '/reset-mid' });
    s.on('error', () => {});
    s.resume();
    s.on('close', () => resolve(s.rstCode ?? -1));
  });
  assert.equal(code, constants.NGHTTP2_INTERNAL_ERROR);
  session.close();
  await assertDrained(sluice.admin);
});

test('upstream cuts the body: HTTP/1.1 client sees the connection close without the last chunk', async () => {
  const data = await new Promise<string>((resolve) => {
    const s = netConnect(port, '127.0.0.1', () => s.write('GET /reset-mid HTTP/1.1\r\nHost: x\r\n\r\n'));
    let d = '';
    s.setEncoding('latin1').on('data', (c: string) => (d += c));
    s.on('error', () => {});
    s.on('close', () => resolve(d));
    setTimeout(() => s.destroy(), 5000);
  });
  assert.match(data, /^HTTP\/1\.1 200 /);
  assert.match(data, /partial/);
  assert.ok(!data.endsWith('0\r\n\r\n'), 'no terminating chunk');
  await assertDrained(sluice.admin);
});

function wsOutcome(path: string): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
    ws.on('open', () => {
      ws.close();
      resolve('open');
    });
    ws.on('unexpected-response', (_req, res) => {
      resolve(String(res.statusCode));
      res.resume();
      ws.terminate();
    });
    ws.on('error', () => resolve('error'));
  });
}

test('WebSocket handshakes go through the same admission: URL length, rate limit, upstream timeout', async () => {
  assert.equal(await wsOutcome('/ws'), 'open');
  assert.equal(await wsOutcome(`/ws?${'x'.repeat(100)}`), '414');
  assert.equal(await wsOutcome('/ws-limited/1'), 'open');
  assert.equal(await wsOutcome('/ws-limited/2'), 'open');
  assert.equal(await wsOutcome('/ws-limited/3'), '429');
  const t0 = Date.now();
  assert.equal(await wsOutcome('/mute/ws'), '504');
  assert.ok(Date.now() - t0 < 3000, `handshake timeout took ${Date.now() - t0} ms`);
  await assertDrained(sluice.admin);
});

test('a WebSocket client that leaves while its handshake is pending frees its slot', async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/mute/leave`);
  ws.on('error', () => {});
  await new Promise((r) => setTimeout(r, 150));
  ws.terminate();
  await assertDrained(sluice.admin);
});
