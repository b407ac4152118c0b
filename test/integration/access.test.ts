import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { startBackend } from '../helpers/backend.js';
import { startSluice } from '../helpers/sluice.js';
import { request } from 'node:http';
import { get, assertIdle, status } from '../helpers/gateway.js';

/** One request on its own connection (no keep-alive reuse: a retried request would spend a token twice). */
function fresh(url: string, method = 'GET'): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

const SECRET = 'access-test-secret-0123456789abcdef';

function problem(body: string): { type: string; status: number; detail: string; title: string } {
  return JSON.parse(body) as { type: string; status: number; detail: string; title: string };
}

test('route and class access: 403 by CIDR, 405 with Allow, 401 with WWW-Authenticate: Bearer; the backend sees none of them', async () => {
  const b = await startBackend();
  const s = await startSluice(`identity:
  jwt: { secret: ${SECRET}, algorithms: [HS256] }
upstreams:
  - name: app
    targets: [${b.url}]
routes:
  - name: denied
    match: { pathPrefix: /denied }
    upstream: app
    access: { deny: [127.0.0.0/8] }
  - name: partners
    match: { pathPrefix: /partners }
    upstream: app
    access: { allow: [10.0.0.0/8, "::1"] }
  - name: readonly
    match: { pathPrefix: /ro }
    upstream: app
    access: { methods: [GET, HEAD] }
  - name: private
    match: { pathPrefix: /private }
    upstream: app
    access: { requireIdentity: true }
  - name: open
    upstream: app
classes:
  - name: ops
    match: { pathPrefix: /ops }
    access: { allow: [192.168.0.0/16] }
  - name: rest
defaultClass: rest
`);
  try {
    let r = await get(`${s.url}/denied/x`);
    assert.equal(r.status, 403);
    assert.equal(r.headers.get('content-type'), 'application/problem+json');
    assert.equal(problem(r.body).type, 'urn:sluice:error:forbidden');
    assert.match(problem(r.body).detail, /client 127\.0\.0\.1 is denied by route 'denied'/);

    r = await get(`${s.url}/partners/x`);
    assert.equal(r.status, 403);
    assert.match(problem(r.body).detail, /not in the allow list of route 'partners'/);

    r = await get(`${s.url}/ops/x`);
    assert.equal(r.status, 403, 'class access applies too');
    assert.match(problem(r.body).detail, /class 'ops'/);

    r = await get(`${s.url}/ro/x`, {}, 'DELETE');
    assert.equal(r.status, 405);
    assert.equal(r.headers.get('allow'), 'GET, HEAD');
    assert.equal(problem(r.body).type, 'urn:sluice:error:method-not-allowed');
    assert.equal((await get(`${s.url}/ro/x`)).status, 200);

    r = await get(`${s.url}/private/x`);
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="sluice"');
    assert.match(problem(r.body).detail, /requires a valid token: no token \(header authorization/);

    const key = new TextEncoder().encode(SECRET);
    const expired = await new SignJWT({ sub: 'u1' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(key);
    r = await get(`${s.url}/private/x`, { authorization: `Bearer ${expired}` });
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate')!, /^Bearer realm="sluice", error="invalid_token", error_description="expired at [^"]*"$/);
    assert.match(problem(r.body).detail, /requires a valid token: expired at /);

    r = await get(`${s.url}/private/x`, { authorization: 'Bearer not.a.jwt' });
    assert.equal(r.status, 401);
    assert.match(problem(r.body).detail, /not a JWT/);

    assert.equal(b.hits.length, 1, `only the allowed GET /ro/x reached the backend: ${b.hits}`);
    const good = await new SignJWT({ sub: 'u1' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(key);
    r = await get(`${s.url}/private/x`, { authorization: `Bearer ${good}` });
    assert.equal(r.status, 200);
    assert.equal((await get(`${s.url}/anything`)).status, 200);
    await assertIdle(s);
  } finally {
    await s.stop();
    await b.close();
  }
});

test('an access decision takes no rate-limit token and no queue slot', async () => {
  const b = await startBackend();
  const s = await startSluice(`upstreams:
  - name: app
    targets: [${b.url}]
    maxConcurrent: 1
routes:
  - name: ro
    upstream: app
    access: { methods: [GET] }
classes:
  - name: c
    rateLimit: { rate: 1, per: 1m, burst: 1 }
    queue: { size: 0, timeout: 1s }
defaultClass: c
`);
  try {
    // Refused requests first: none of them may spend the single token.
    for (let i = 0; i < 5; i++) assert.equal(await fresh(`${s.url}/x`, 'POST'), 405);
    // Hold the one slot with a slow request; a refused request is answered at once, not queued or shed.
    const slow = fresh(`${s.url}/slow?delay=800`);
    await new Promise((r) => setTimeout(r, 150));
    const t0 = performance.now();
    assert.equal(await fresh(`${s.url}/x`, 'PUT'), 405);
    const ms = performance.now() - t0;
    assert.ok(ms < 400, `answered in ${ms} ms while the slot was held`);
    assert.equal(await slow, 200, 'the one token was still there');
    assert.equal(await fresh(`${s.url}/y`), 429, 'and now it is spent');
    const st = await status(s);
    assert.equal(st.classes[0]!.served, 1);
    await assertIdle(s);
  } finally {
    await s.stop();
    await b.close();
  }
});

test('WebSocket upgrades get the same access decisions (401 with its challenge) and stick to their session target', async () => {
  const bs = [await startBackend({ id: 'b0' }), await startBackend({ id: 'b1' })];
  const s = await startSluice(`identity:
  jwt: { secret: ${SECRET} }
upstreams:
  - name: app
    targets: [${bs[0]!.url}, ${bs[1]!.url}]
    sticky: { cookie: srv }
routes:
  - name: private
    match: { pathPrefix: /private }
    upstream: app
    access: { requireIdentity: true }
  - upstream: app
`);
  try {
    const refused = await new Promise<{ status: number; challenge: string | undefined }>((resolve, reject) => {
      const ws = new WebSocket(`${s.url.replace('http', 'ws')}/private/ws`);
      ws.on('unexpected-response', (_req, res) => {
        resolve({ status: res.statusCode ?? 0, challenge: res.headers['www-authenticate'] });
        res.resume();
      });
      ws.on('open', () => reject(new Error('upgrade should have been refused')));
      ws.on('error', () => {});
    });
    assert.deepEqual(refused, { status: 401, challenge: 'Bearer realm="sluice"' });
    // The session's cookie names b1 (learned from an HTTP response); the upgrade goes there too.
    let cookie = '';
    for (let i = 0; i < 4 && !cookie; i++) {
      const r = await get(`${s.url}/page${i}`);
      if (r.headers.get('x-backend-id') === 'b1') cookie = r.headers.getSetCookie()[0]!.split(';')[0]!;
    }
    assert.ok(cookie);
    const upgrades = [0, 0];
    bs.forEach((b, i) => b.server.on('upgrade', () => upgrades[i]!++));
    for (let i = 0; i < 3; i++) {
      const ws = new WebSocket(`${s.url.replace('http', 'ws')}/ws`, { headers: { cookie } });
      const echo = await new Promise<string>((resolve, reject) => {
        ws.on('open', () => ws.send('hi'));
        ws.on('message', (m) => resolve(m.toString()));
        ws.on('error', reject);
      });
      assert.equal(echo, 'echo:hi');
      ws.close();
      await new Promise((r) => ws.once('close', r));
    }
    assert.deepEqual(upgrades, [0, 3], 'every upgrade reached the session target');
    await assertIdle(s);
  } finally {
    await s.stop();
    await Promise.all(bs.map((b) => b.close()));
  }
});
