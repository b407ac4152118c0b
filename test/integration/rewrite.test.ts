import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend } from '../helpers/backend.js';
import { startSluice } from '../helpers/sluice.js';
import { get, assertIdle } from '../helpers/gateway.js';

interface Echo {
  path: string;
  url: string;
  headers: Record<string, string | undefined>;
}

test('rewrites: the backend receives the rewritten path and headers; the client the rewritten response headers', async () => {
  const b = await startBackend();
  const s = await startSluice(`upstreams:
  - name: app
    targets: [${b.url}]
routes:
  - name: strip
    match: { pathPrefix: /api/ }
    upstream: app
    rewrite: { stripPrefix: /api }
    requestHeaders: { set: { x-env: prod, x-forwarded-proto: https }, add: { x-tag: gateway }, remove: [x-debug] }
    responseHeaders: { set: { x-frame-options: DENY }, remove: [x-backend] }
  - name: replace
    match: { pathPrefix: /v1/ }
    upstream: app
    rewrite: { replacePrefix: { from: /v1/, to: /v2/ } }
  - name: regex
    match: { pathPrefix: /u/ }
    upstream: app
    rewrite: { regex: "^/u/([0-9]+)/?$", replace: /users/$1/profile }
  - name: plain
    upstream: app
`);
  try {
    let r = await get(`${s.url}/api/orders/7?expand=items&x=%20y`, { 'x-debug': '1', 'x-env': 'dev', 'x-tag': 'client' });
    assert.equal(r.status, 200);
    let e = JSON.parse(r.body) as Echo;
    assert.equal(e.url, '/orders/7?expand=items&x=%20y');
    assert.equal(e.headers['x-env'], 'prod');
    assert.equal(e.headers['x-forwarded-proto'], 'https', 'rules apply after the X-Forwarded-* headers');
    assert.equal(e.headers['x-tag'], 'client, gateway');
    assert.equal(e.headers['x-debug'], undefined);
    assert.equal(r.headers.get('x-frame-options'), 'DENY');
    assert.equal(r.headers.get('x-backend'), null);
    assert.match(r.headers.get('server-timing')!, /queue;dur=/);

    e = JSON.parse((await get(`${s.url}/api/`)).body) as Echo;
    assert.equal(e.url, '/');
    e = JSON.parse((await get(`${s.url}/v1/items?q=1`)).body) as Echo;
    assert.equal(e.url, '/v2/items?q=1');
    e = JSON.parse((await get(`${s.url}/u/42`)).body) as Echo;
    assert.equal(e.url, '/users/42/profile');
    e = JSON.parse((await get(`${s.url}/u/abc`)).body) as Echo;
    assert.equal(e.url, '/u/abc', 'no match: unchanged');
    r = await get(`${s.url}/plain/x`, { 'x-debug': '1' });
    e = JSON.parse(r.body) as Echo;
    assert.equal(e.url, '/plain/x');
    assert.equal(e.headers['x-debug'], '1');
    assert.equal(r.headers.get('x-backend'), 'yes');
    await assertIdle(s);
  } finally {
    await s.stop();
    await b.close();
  }
});

test('WebSocket handshakes get the route rewrite, header rules (101 response rules too) and the sticky cookie', async () => {
  const { createServer } = await import('node:http');
  const { WebSocketServer, WebSocket } = await import('ws');
  const server = createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server });
  const seen: { url: string; headers: Record<string, string | string[] | undefined> }[] = [];
  wss.on('headers', (h) => h.push('X-Backend: internal', 'X-Kept: yes'));
  wss.on('connection', (ws, req) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    ws.on('message', (m) => ws.send(`echo:${m.toString()}`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const s = await startSluice(`upstreams:
  - name: app
    targets: [http://127.0.0.1:${port}]
    sticky: { cookie: srv, ttl: 1h }
routes:
  - name: ws
    match: { pathPrefix: /api/ }
    upstream: app
    rewrite: { stripPrefix: /api }
    requestHeaders: { set: { x-env: prod }, remove: [x-debug] }
    responseHeaders: { set: { x-frame-options: DENY }, remove: [x-backend] }
`);
  try {
    const ws = new WebSocket(`${s.url.replace('http', 'ws')}/api/chat?room=1`, { headers: { 'x-debug': '1' } });
    const upgrade = new Promise<Record<string, string | string[] | undefined>>((resolve) => ws.once('upgrade', (res) => resolve(res.headers)));
    const echoed = await new Promise<string>((resolve, reject) => {
      ws.on('open', () => ws.send('hi'));
      ws.on('message', (m) => resolve(m.toString()));
      ws.on('error', reject);
    });
    const h = await upgrade;
    ws.close();
    assert.equal(echoed, 'echo:hi');
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.url, '/chat?room=1', 'path rewritten, query kept');
    assert.equal(seen[0]!.headers['x-env'], 'prod');
    assert.equal(seen[0]!.headers['x-debug'], undefined);
    assert.equal(h['x-frame-options'], 'DENY');
    assert.equal(h['x-backend'], undefined);
    assert.equal(h['x-kept'], 'yes');
    const cookie = ([] as string[]).concat(h['set-cookie'] ?? []).find((c) => c.startsWith('srv='));
    assert.ok(cookie, `sticky cookie on the 101: ${JSON.stringify(h['set-cookie'])}`);
    await assertIdle(s);
  } finally {
    await s.stop();
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
