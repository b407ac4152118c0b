/** Slow clients and stalled upstreams are cut off by the policy's timeouts. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startSluice, simplePolicy, type RunningSluice } from '../helpers/sluice.js';
import { getJson, responseCompletion, waitFor } from '../helpers/net.js';
import { assertDrained } from '../helpers/invariants.js';

let backend: Backend;
let sluice: RunningSluice;
let port: number;

before(async () => {
  backend = await startBackend();
  sluice = await startSluice(
    simplePolicy(backend.url, 'timeouts: { requestHeaders: 1s, requestBodyIdle: 500ms, keepAlive: 500ms }\n', '    idleTimeout: 500ms\n'),
  );
  port = Number(new URL(sluice.url).port);
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

/** Opens a raw connection, runs `drive`, and resolves with what was received and when the socket closed. */
function rawSession(drive: (s: ReturnType<typeof connect>) => void, limitMs = 8000): Promise<{ data: string; closedAfterMs: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = connect(port, '127.0.0.1');
    let data = '';
    s.setEncoding('latin1').on('data', (d: string) => (data += d));
    const done = (): void => resolve({ data, closedAfterMs: Date.now() - t0 });
    s.on('close', done);
    s.on('error', () => {});
    setTimeout(() => s.destroy(), limitMs);
    drive(s);
  });
}

test('slowloris: a request head dripped byte by byte is cut off after requestHeaders', async () => {
  const r = await rawSession((s) => {
    s.write('GET /slow HTTP/1.1\r\nHost: x\r\n');
    const t = setInterval(() => (s.writable ? s.write('X-a: b\r\n') : clearInterval(t)), 200);
    s.on('close', () => clearInterval(t));
  });
  assert.ok(r.closedAfterMs < 4000, `closed after ${r.closedAfterMs} ms`);
  assert.ok(!backend.hits.includes('/slow'));
});

test('a request body that stalls is answered 408 after requestBodyIdle, and the slot is freed', async () => {
  const r = await rawSession((s) => {
    s.write('POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789');
  });
  assert.match(r.data, /^HTTP\/1\.1 408 /);
  assert.match(r.data, /request body stalled for 500 ms/);
  assert.ok(r.closedAfterMs < 4000, `closed after ${r.closedAfterMs} ms`);
  await waitFor(async () => (await getJson<{ inFlight: number }>(`${sluice.admin}/status`)).inFlight === 0, 3000, 'slot to free');
});

test('an upstream that stalls mid-response is cut off after its idleTimeout', async () => {
  const t0 = Date.now();
  const outcome = await responseCompletion(`${sluice.url}/stall`);
  assert.notEqual(outcome, 'complete');
  assert.ok(Date.now() - t0 < 4000, `took ${Date.now() - t0} ms`);
  await waitFor(async () => (await getJson<{ inFlight: number }>(`${sluice.admin}/status`)).inFlight === 0, 3000, 'slot to free');
});

test('idle keep-alive connections are closed after timeouts.keepAlive', async () => {
  const r = await rawSession((s) => s.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n'));
  assert.match(r.data, /^HTTP\/1\.1 200 /);
  assert.ok(r.closedAfterMs >= 400 && r.closedAfterMs < 3000, `closed after ${r.closedAfterMs} ms`);
});
