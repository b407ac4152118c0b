import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSluice } from '../helpers/sluice.js';
import { startBackends, closeAll, get, setCookie, assertIdle, reload, status } from '../helpers/gateway.js';
import { waitFor } from '../helpers/net.js';
import { startBackend } from '../helpers/backend.js';

const policy = (urls: string[], extra = '') => `upstreams:
  - name: app
    targets: [${urls.join(', ')}]
    sticky: { cookie: srv, ttl: 1h }
${extra}
routes:
  - upstream: app
`;

test('sticky cookie: 50 requests of a session reach one target, also across a reload; a target gone after reload moves the session', async () => {
  const bs = await startBackends(3);
  const urls = bs.map((b) => b.url);
  const s = await startSluice(policy(urls));
  let extra: Awaited<ReturnType<typeof startBackend>> | undefined;
  try {
    const first = await get(`${s.url}/login`);
    const cookie = setCookie(first.headers, 'srv');
    assert.ok(cookie, 'first response sets the sticky cookie');
    const line = first.headers.getSetCookie().find((c) => c.startsWith('srv='))!;
    assert.match(line, /Max-Age=3600/);
    assert.match(line, /HttpOnly/);
    // Opaque: the cookie names no address or port.
    for (const b of bs) assert.ok(!cookie.includes(String(b.port)) && !cookie.includes('127.0.0.1'), cookie);
    const home = first.headers.get('x-backend-id');
    for (let i = 0; i < 50; i++) {
      const r = await get(`${s.url}/page${i}`, { cookie: `other=1; ${cookie}` });
      assert.equal(r.headers.get('x-backend-id'), home, `request ${i}`);
      assert.equal(setCookie(r.headers, 'srv'), undefined, 'no Set-Cookie while the session stays put');
    }
    // Different sessions spread over the targets (round-robin for new sessions).
    const fresh = new Set<string>();
    for (let i = 0; i < 6; i++) fresh.add((await get(`${s.url}/new${i}`)).headers.get('x-backend-id')!);
    assert.equal(fresh.size, 3);

    // A reload that changes other settings keeps the session where it is.
    await reload(s, policy(urls, '    timeout: 20s'));
    for (let i = 0; i < 10; i++) assert.equal((await get(`${s.url}/after${i}`, { cookie })).headers.get('x-backend-id'), home);
    // A reload that adds a target (new pool) keeps it too: the cookie names the target, not its index.
    extra = await startBackend({ id: 'extra' });
    await reload(s, policy([extra.url, ...urls]));
    for (let i = 0; i < 10; i++) assert.equal((await get(`${s.url}/after-add${i}`, { cookie })).headers.get('x-backend-id'), home);

    // The session's target removed by a reload: the request goes elsewhere and the cookie is re-set.
    const homeUrl = bs[Number(home!.slice(1))]!.url;
    await reload(s, policy([extra.url, ...urls].filter((u) => u !== homeUrl)));
    const moved = await get(`${s.url}/gone`, { cookie });
    assert.equal(moved.status, 200);
    assert.notEqual(moved.headers.get('x-backend-id'), home);
    const recookie = setCookie(moved.headers, 'srv');
    assert.ok(recookie && recookie !== cookie, 'cookie re-set');
    for (let i = 0; i < 10; i++) assert.equal((await get(`${s.url}/re${i}`, { cookie: recookie })).headers.get('x-backend-id'), moved.headers.get('x-backend-id'));
    await assertIdle(s);
  } finally {
    await extra?.close();
    await s.stop();
    await closeAll(bs);
  }
});

test('sticky cookie: a target killed mid-session — the session moves without an error and the cookie is re-set', async () => {
  const bs = await startBackends(3);
  const s = await startSluice(policy(bs.map((b) => b.url), '    outlierDetection: { consecutiveFailures: 1, baseEjectionTime: 30s }'));
  try {
    const first = await get(`${s.url}/a`);
    const cookie = setCookie(first.headers, 'srv')!;
    const home = first.headers.get('x-backend-id')!;
    for (let i = 0; i < 5; i++) assert.equal((await get(`${s.url}/b${i}`, { cookie })).headers.get('x-backend-id'), home);
    await bs[Number(home.slice(1))]!.close();
    const r = await get(`${s.url}/c`, { cookie });
    assert.equal(r.status, 200, 'the refused connection is retried on another target');
    const next = r.headers.get('x-backend-id')!;
    assert.notEqual(next, home);
    const recookie = setCookie(r.headers, 'srv');
    assert.ok(recookie && recookie !== cookie, 'cookie re-set to the new target');
    // The old cookie now also lands on a live target (its target is ejected), answered with a fresh cookie.
    const old = await get(`${s.url}/d`, { cookie });
    assert.equal(old.status, 200);
    assert.ok(setCookie(old.headers, 'srv'));
    for (let i = 0; i < 20; i++) {
      const rr = await get(`${s.url}/e${i}`, { cookie: recookie });
      assert.equal(rr.status, 200);
      assert.equal(rr.headers.get('x-backend-id'), next);
    }
    await assertIdle(s);
  } finally {
    await s.stop();
    await closeAll(bs);
  }
});

test('sticky cookie: a target failing its health check: its sessions move and the cookie is re-set', async () => {
  const bs = await startBackends(2);
  const s = await startSluice(policy(bs.map((b) => b.url), '    healthCheck: { path: /healthz, interval: 100ms, timeout: 500ms, healthyThreshold: 1, unhealthyThreshold: 1 }'));
  try {
    const first = await get(`${s.url}/a`);
    const cookie = setCookie(first.headers, 'srv')!;
    const home = first.headers.get('x-backend-id')!;
    bs[Number(home.slice(1))]!.healthy = false;
    await waitFor(async () => (await status(s)).upstreams[0]!.targets.some((t) => !t.healthy), 5000, 'target marked unhealthy');
    const r = await get(`${s.url}/b`, { cookie });
    assert.notEqual(r.headers.get('x-backend-id'), home);
    assert.ok(setCookie(r.headers, 'srv'));
    await assertIdle(s);
  } finally {
    await s.stop();
    await closeAll(bs);
  }
});

test('appCookie: the mapping is learned from the application Set-Cookie and follows the session when its target dies', async () => {
  const bs = await startBackends(3);
  const s = await startSluice(`upstreams:
  - name: app
    targets: [${bs.map((b) => b.url).join(', ')}]
    sticky: { appCookie: JSESSIONID }
routes:
  - upstream: app
`);
  try {
    const sessions = new Map<string, string>();
    for (const v of ['s1', 's2', 's3', 's4']) {
      const r = await get(`${s.url}/set-cookie?name=JSESSIONID&value=${v}`);
      assert.equal(setCookie(r.headers, 'JSESSIONID'), `JSESSIONID=${v}`, 'the application cookie passes through');
      assert.equal(r.headers.getSetCookie().length, 1, 'sluice adds no cookie of its own');
      sessions.set(v, r.headers.get('x-backend-id')!);
    }
    assert.ok(new Set(sessions.values()).size >= 2, 'sessions were spread');
    for (let i = 0; i < 30; i++) {
      const v = `s${(i % 4) + 1}`;
      assert.equal((await get(`${s.url}/x${i}`, { cookie: `JSESSIONID=${v}` })).headers.get('x-backend-id'), sessions.get(v), `session ${v}`);
    }
    const victim = sessions.get('s1')!;
    await bs[Number(victim.slice(1))]!.close();
    const r = await get(`${s.url}/after`, { cookie: 'JSESSIONID=s1' });
    assert.equal(r.status, 200);
    const moved = r.headers.get('x-backend-id')!;
    assert.notEqual(moved, victim);
    for (let i = 0; i < 10; i++) assert.equal((await get(`${s.url}/y${i}`, { cookie: 'JSESSIONID=s1' })).headers.get('x-backend-id'), moved);
    await assertIdle(s);
  } finally {
    await s.stop();
    await closeAll(bs);
  }
});
