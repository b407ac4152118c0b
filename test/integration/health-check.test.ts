import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSluice } from '../helpers/sluice.js';
import { startBackends, closeAll, get, assertIdle, status } from '../helpers/gateway.js';
import { createServer, type Socket, type AddressInfo } from 'node:net';
import { waitFor, closedPort } from '../helpers/net.js';

const hc = '    healthCheck: { path: /healthz, interval: 100ms, timeout: 500ms, healthyThreshold: 2, unhealthyThreshold: 2 }';

test('health-check flapping: a target whose /healthz toggles leaves and rejoins the rotation; /status and /metrics show it', async () => {
  const bs = await startBackends(2);
  const s = await startSluice(`upstreams:
  - name: app
    targets: [${bs[0]!.url}, ${bs[1]!.url}]
    maxConcurrent: 1
${hc}
routes:
  - upstream: app
classes:
  - name: only
    rateLimit: { rate: 1000, per: 1s, burst: 1000 }
defaultClass: only
`);
  try {
    const healthy = async (): Promise<boolean[]> => (await status(s)).upstreams[0]!.targets.map((t) => t.healthy);
    await waitFor(async () => (await status(s)).upstreams[0]!.targets.every((t) => (t.check?.runs ?? 0) >= 2), 5000, 'first checks');
    let sent = 0;
    for (let round = 0; round < 3; round++) {
      bs[0]!.healthy = false;
      await waitFor(async () => !(await healthy())[0], 5000, `round ${round}: b0 marked unhealthy`);
      const st = await status(s);
      assert.match(st.upstreams[0]!.targets[0]!.check!.lastError, /status 503/);
      for (let i = 0; i < 10; i++, sent++) assert.equal((await get(`${s.url}/r${round}-${i}`)).headers.get('x-backend-id'), 'b1');
      const metrics = await (await fetch(`${s.admin}/metrics`)).text();
      assert.match(metrics, new RegExp(`sluice_upstream_target_healthy\\{[^}]*target="${bs[0]!.url.replace(/[.]/g, '\\.')}"[^}]*\\} 0`));
      bs[0]!.healthy = true;
      await waitFor(async () => (await healthy())[0] === true, 5000, `round ${round}: b0 back`);
      const ids = new Set<string>();
      for (let i = 0; i < 10; i++, sent++) ids.add((await get(`${s.url}/back${round}-${i}`)).headers.get('x-backend-id')!);
      assert.deepEqual([...ids].sort(), ['b0', 'b1'], 'b0 back in rotation');
    }
    // Health checks ran throughout but never counted as requests, slots or rate-limit tokens.
    assert.ok(bs[0]!.healthChecks >= 12, `checks seen by b0: ${bs[0]!.healthChecks}`);
    const st = await status(s);
    assert.equal(st.classes[0]!.served, sent);
    assert.ok(st.upstreams[0]!.targets[0]!.check!.runs >= 12);
    const metrics = await (await fetch(`${s.admin}/metrics`)).text();
    assert.match(metrics, /sluice_upstream_target_healthy\{[^}]*\} 1/);
    await assertIdle(s);
  } finally {
    await s.stop();
    await closeAll(bs);
  }
});

test('all targets down: a fast 503 problem+json with Retry-After, not a connection attempt per request', async () => {
  const bs = await startBackends(2);
  const s = await startSluice(`upstreams:
  - name: app
    targets: [${bs[0]!.url}, ${bs[1]!.url}]
    healthCheck: { path: /healthz, interval: 200ms, timeout: 500ms, healthyThreshold: 1, unhealthyThreshold: 1 }
routes:
  - upstream: app
`);
  try {
    for (const b of bs) b.healthy = false;
    await waitFor(async () => (await status(s)).upstreams[0]!.targets.every((t) => !t.healthy), 5000, 'all unhealthy');
    const hitsBefore = bs[0]!.hits.length + bs[1]!.hits.length;
    const times: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t0 = performance.now();
      const r = await get(`${s.url}/x${i}`);
      times.push(performance.now() - t0);
      assert.equal(r.status, 503);
      assert.equal(r.headers.get('content-type'), 'application/problem+json');
      assert.equal(r.headers.get('retry-after'), '1');
      const body = JSON.parse(r.body) as { type: string; status: number; detail: string; class: string };
      assert.equal(body.type, 'urn:sluice:error:no-healthy-upstream');
      assert.equal(body.status, 503);
      assert.match(body.detail, /no target passes its health check/);
      assert.equal(body.class, 'default');
    }
    times.sort((a, b) => a - b);
    const p50 = times[25]!;
    const p99 = times[49]!;
    process.stdout.write(`# all targets down: 503 in p50 ${p50.toFixed(2)} ms, max ${p99.toFixed(2)} ms over 50 requests (loaded 2-core machine)\n`);
    assert.ok(p50 < 50, `p50 ${p50}`);
    assert.equal(bs[0]!.hits.length + bs[1]!.hits.length, hitsBefore, 'no request reached a backend');
    bs[1]!.healthy = true;
    await waitFor(async () => (await get(`${s.url}/again`)).status === 200, 5000, 'served again once a target recovers');
    await assertIdle(s);
  } finally {
    await s.stop();
    await closeAll(bs);
  }
});

test('health checks fail on silence (timeout) and on refused connections; the healthy target takes all traffic', async () => {
  const bs = await startBackends(1);
  const sockets = new Set<Socket>();
  const silent = createServer((s) => sockets.add(s)); // accepts, never answers
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const silentUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const refusedUrl = `http://127.0.0.1:${await closedPort()}`;
  const s = await startSluice(`upstreams:
  - name: app
    targets: [${silentUrl}, ${refusedUrl}, ${bs[0]!.url}]
    healthCheck: { path: /healthz, interval: 100ms, timeout: 200ms, healthyThreshold: 1, unhealthyThreshold: 1 }
routes:
  - upstream: app
`);
  try {
    await waitFor(async () => (await status(s)).upstreams[0]!.targets.filter((t) => !t.healthy).length === 2, 5000, 'two targets unhealthy');
    const t = (await status(s)).upstreams[0]!.targets;
    assert.match(t[0]!.check!.lastError, /no answer within 200 ms/);
    assert.equal(t[1]!.check!.lastError, 'ECONNREFUSED');
    assert.equal(t[2]!.healthy, true);
    for (let i = 0; i < 10; i++) {
      const r = await get(`${s.url}/x${i}`);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-backend-id'), 'b0');
    }
    await assertIdle(s);
  } finally {
    await s.stop();
    for (const x of sockets) x.destroy();
    silent.close();
    await closeAll(bs);
  }
});

test('h2c-only targets are health-checked over HTTP/2 (the upstream protocol), and a failing one leaves the rotation', async () => {
  const { createServer: createH2c } = await import('node:http2');
  let healthy = true;
  let checks = 0;
  const seen: string[] = [];
  // HTTP/2 with prior knowledge only: an HTTP/1.1 request gets no answer.
  const h2 = createH2c((req, res) => {
    if (req.url === '/healthz') {
      checks++;
      seen.push(req.httpVersion);
      res.writeHead(healthy ? 200 : 503).end();
      return;
    }
    res.writeHead(200, { 'x-backend-id': 'h2c' }).end('ok');
  });
  await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(h2.address() as AddressInfo).port}`;
  const s = await startSluice(`upstreams:
  - name: app
    targets: [${url}]
    protocol: h2c
    healthCheck: { path: /healthz, interval: 100ms, timeout: 500ms, healthyThreshold: 1, unhealthyThreshold: 1 }
routes:
  - upstream: app
classes:
  - name: only
defaultClass: only
`);
  try {
    await waitFor(async () => ((await status(s)).upstreams[0]!.targets[0]!.check?.runs ?? 0) >= 3, 5000, 'checks ran');
    const t = (await status(s)).upstreams[0]!.targets[0]!;
    assert.equal(t.healthy, true, `h2c target healthy (last error: ${t.check?.lastError})`);
    assert.ok(checks >= 3 && seen.every((v) => v === '2.0'), `checks over HTTP/2: ${seen.join(',')}`);
    assert.equal((await get(`${s.url}/x`)).status, 200);
    healthy = false;
    await waitFor(async () => !(await status(s)).upstreams[0]!.targets[0]!.healthy, 5000, 'marked unhealthy');
    assert.equal((await get(`${s.url}/x`)).status, 503);
    healthy = true;
    await waitFor(async () => (await status(s)).upstreams[0]!.targets[0]!.healthy, 5000, 'back');
    assert.equal((await get(`${s.url}/x`)).status, 200);
    await assertIdle(s);
  } finally {
    await s.stop();
    await new Promise<void>((r) => h2.close(() => r()));
  }
});
