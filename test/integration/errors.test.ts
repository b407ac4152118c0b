import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startSluice, type RunningSluice } from '../helpers/sluice.js';
import { abortAfter, closedPort, getJson, responseCompletion, waitFor } from '../helpers/net.js';
import { assertDrained } from '../helpers/invariants.js';

let backend: Backend;
let sluice: RunningSluice;

interface Status {
  classes: { name: string; inFlight: number; queued: number }[];
  upstreams: { name: string; inFlight: number }[];
}

before(async () => {
  backend = await startBackend();
  const dead = await closedPort();
  sluice = await startSluice(`upstreams:
  - name: app
    targets: [${backend.url}]
    timeout: 400ms
  - name: dead
    targets: [http://127.0.0.1:${dead}]
routes:
  - match: { pathPrefix: /dead }
    upstream: dead
  - match: { pathPrefix: /app }
    upstream: app
  - match: { pathPrefix: /hang }
    upstream: app
  - match: { pathPrefix: /reset }
    upstream: app
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

async function problem(path: string, status: number): Promise<Record<string, unknown>> {
  const r = await fetch(`${sluice.url}${path}`);
  assert.equal(r.status, status, `${path}`);
  assert.equal(r.headers.get('content-type'), 'application/problem+json');
  const body = (await r.json()) as Record<string, unknown>;
  assert.equal(body.status, status);
  assert.equal(typeof body.type, 'string');
  assert.equal(typeof body.title, 'string');
  assert.equal(typeof body.detail, 'string');
  return body;
}

test('no route: 404 problem+json', async () => {
  const b = await problem('/nowhere', 404);
  assert.match(String(b.detail), /no route for GET/);
});

test('upstream refused: 502', async () => {
  const b = await problem('/dead', 502);
  assert.match(String(b.detail), /unreachable: ECONNREFUSED/);
  assert.equal(b.class, 'default');
});

test('upstream sends no headers within its timeout: 504', async () => {
  const t0 = Date.now();
  await problem('/hang', 504);
  assert.ok(Date.now() - t0 < 3000);
});

test('upstream resets before answering: 502', async () => {
  await problem('/reset', 502);
});

test('upstream resets mid-response: the client sees an aborted response, not a truncated success', async () => {
  const outcome = await responseCompletion(`${sluice.url}/reset-mid`);
  assert.notEqual(outcome, 'complete');
  // Proxy still serves others.
  assert.equal((await fetch(`${sluice.url}/app/ok`)).status, 200);
});

test('a client that goes away releases what it held', async () => {
  await abortAfter(`${sluice.url}/app/slow?delay=2000`, 200);
  await waitFor(async () => {
    const s = await getJson<Status>(`${sluice.admin}/status`);
    return s.upstreams.every((u) => u.inFlight === 0);
  }, 3000, 'in-flight to drop to 0');
  assert.equal((await fetch(`${sluice.url}/app/ok`)).status, 200);
});

test('oversized request headers: 431', async () => {
  const r = await fetch(`${sluice.url}/app/x`, { headers: { 'x-big': 'a'.repeat(20_000) } });
  assert.equal(r.status, 431);
});

test('the proxy is still alive after every failure above', async () => {
  assert.equal((await fetch(`${sluice.admin}/healthz`)).status, 200);
  assert.equal(await (await fetch(`${sluice.admin}/healthz`)).text(), 'ok\n');
  assert.equal(sluice.proc.exitCode, null);
});
