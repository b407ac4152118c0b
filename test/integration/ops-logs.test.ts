/**
 * Operating sluice: access log lines, X-Request-Id, target health warnings,
 * tracing start-up line and export-failure warnings, /readyz during drain,
 * admin token scopes, reload answers that need a restart, error exposure and
 * Server-Timing settings. Real sluice process, real backends, real sockets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { writeFile } from 'node:fs/promises';
import { startBackend } from '../helpers/backend.js';
import { startSluice, type RunningSluice } from '../helpers/sluice.js';
import { closedPort, getJson, waitFor } from '../helpers/net.js';

type Line = Record<string, unknown> & { level: number; msg: string };

function lines(s: RunningSluice): Line[] {
  return s
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);
}

const access = (s: RunningSluice): Line[] => lines(s).filter((l) => l.msg === 'access');

async function drained(s: RunningSluice): Promise<void> {
  await waitFor(async () => {
    const st = await getJson<{ inFlight: number; queued: number }>(`${s.admin}/status`);
    return st.inFlight === 0 && st.queued === 0;
  }, 5000, 'in-flight and queued to return to zero');
}

const policy = (backend: string, extra = '', upstreamExtra = '') => `upstreams:
  - name: app
    targets: [${backend}]
${upstreamExtra}
routes:
  - match: { pathPrefix: /a }
    upstream: app
classes:
  - name: gold
    priority: 0
    match: { headers: { x-tier: gold } }
  - name: rest
    priority: 1
defaultClass: rest
${extra}`;

test('one access line per request at info, with the request id the client and the upstream see', async () => {
  const backend = await startBackend();
  const s = await startSluice(policy(backend.url));
  try {
    const r = await fetch(`${s.url}/a/x?q=1`, { method: 'POST', body: 'hello world', headers: { 'x-tier': 'gold', 'x-request-id': 'forged-by-client' } });
    const body = await r.text();
    assert.equal(r.status, 200);
    const id = r.headers.get('x-request-id');
    assert.match(id ?? '', /^[0-9a-f-]{36}$/, 'generated: a client that is no trusted proxy cannot choose it');
    assert.equal(backend.lastHeaders['x-request-id'], id, 'forwarded upstream');
    const nf = await fetch(`${s.url}/nowhere`);
    await nf.text();
    assert.equal(nf.status, 404);
    assert.ok(nf.headers.get('x-request-id'), 'sluice\'s own answers carry it too');
    await waitFor(() => access(s).length === 2, 3000, 'two access lines');
    const [a, b] = access(s);
    assert.equal(a!.level, 30);
    assert.deepEqual(
      { method: a!.method, path: a!.path, status: a!.status, class: a!.class, route: a!.route, upstream: a!.upstream, target: a!.target, protocol: a!.protocol, outcome: a!.outcome, request_id: a!.request_id, bytesIn: a!.bytesIn, bytesOut: a!.bytesOut },
      { method: 'POST', path: '/a/x', status: 200, class: 'gold', route: 'route-0', upstream: 'app', target: backend.url, protocol: '1.1', outcome: 'forwarded', request_id: id, bytesIn: 11, bytesOut: Buffer.byteLength(body) },
    );
    for (const k of ['queueMs', 'upstreamMs', 'totalMs']) assert.equal(typeof a![k], 'number', k);
    assert.ok('trace_id' in a!);
    assert.equal(b!.status, 404);
    assert.equal(b!.outcome, 'no_route');
    assert.equal(b!.request_id, nf.headers.get('x-request-id'));
    assert.ok((b!.bytesOut as number) > 0);
    assert.doesNotMatch(s.stdout(), /"stack"/);
    await drained(s);
  } finally {
    await s.stop();
    await backend.close();
  }
});

test('X-Request-Id from a trusted proxy is kept; a malformed one is replaced', async () => {
  const backend = await startBackend();
  const s = await startSluice(policy(backend.url, 'trustedProxies: [127.0.0.1, "::1"]\n'));
  try {
    const r = await fetch(`${s.url}/a`, { headers: { 'x-request-id': 'lb-1234.abc' } });
    await r.text();
    assert.equal(r.headers.get('x-request-id'), 'lb-1234.abc');
    assert.equal(backend.lastHeaders['x-request-id'], 'lb-1234.abc');
    const bad = await fetch(`${s.url}/a`, { headers: { 'x-request-id': 'has spaces; and "quotes"' } });
    await bad.text();
    assert.match(bad.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
    await drained(s);
  } finally {
    await s.stop();
    await backend.close();
  }
});

test('access log off, or sampled at 0: successes are not logged, failures still are', async () => {
  const backend = await startBackend();
  const off = await startSluice(policy(backend.url, 'log: { access: false }\n'));
  const sampled = await startSluice(policy(backend.url, 'log: { accessSample: 0 }\n'));
  try {
    for (const s of [off, sampled]) {
      for (let i = 0; i < 5; i++) await (await fetch(`${s.url}/a`)).text();
      await (await fetch(`${s.url}/nowhere`)).text();
    }
    await waitFor(() => access(sampled).length === 1, 3000, 'the 404 logged despite sampling');
    assert.equal(access(sampled)[0]!.status, 404);
    assert.equal(access(off).length, 0);
    await drained(off);
    await drained(sampled);
  } finally {
    await off.stop();
    await sampled.stop();
    await backend.close();
  }
});

test('a target that fails: one warning when failing, one when ejected, one when it recovers', async () => {
  const good = await startBackend();
  const deadPort = await closedPort();
  const dead = `http://127.0.0.1:${deadPort}`;
  const s = await startSluice(`upstreams:
  - name: app
    targets: [${good.url}, ${dead}]
    outlierDetection: { consecutiveFailures: 3, baseEjectionTime: 1s }
routes:
  - match: { pathPrefix: / }
    upstream: app
`);
  try {
    for (let i = 0; i < 8; i++) assert.equal((await fetch(`${s.url}/x`)).status, 200, 'a refused connection is retried on the other target');
    await waitFor(() => lines(s).some((l) => l.msg.startsWith('target ejected')), 5000, 'ejected warning');
    const revived = createServer((_q, r) => r.end('back')).listen(deadPort, '127.0.0.1');
    try {
      await waitFor(async () => {
        await (await fetch(`${s.url}/x`)).text();
        return lines(s).some((l) => l.msg === 'target recovered');
      }, 10_000, 'recovered line');
      const health = lines(s).filter((l) => l.msg.startsWith('target '));
      const msgs = health.map((l) => `${l.msg.split(':')[0]} ${l.target}`);
      // Failing and ejected within one look (1 s) come as the ejection alone.
      const expected = msgs[0]!.startsWith('target failing')
        ? [`target failing ${dead}`, `target ejected ${dead}`, `target recovered ${dead}`]
        : [`target ejected ${dead}`, `target recovered ${dead}`];
      assert.deepEqual(msgs, expected);
      for (const l of health) assert.equal(l.level, 40);
      assert.ok(access(s).some((l) => l.target === dead && l.outcome === 'forwarded'), 'the revived target served');
      await drained(s);
    } finally {
      revived.close();
    }
  } finally {
    await s.stop();
    await good.close();
  }
});

test('tracing: one start-up line (off, or on with its endpoint); export failures warn once per minute without a stack', async () => {
  const backend = await startBackend();
  const off = await startSluice(policy(backend.url));
  const port = await closedPort();
  const on = await startSluice(policy(backend.url), [], {
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    OTEL_BSP_SCHEDULE_DELAY: '100',
    OTEL_EXPORTER_OTLP_TIMEOUT: '500',
  });
  try {
    // Log lines may reach the pipe after the ready line: wait for them, then check there is exactly one.
    await waitFor(() => lines(off).some((l) => /^tracing /.test(l.msg)) && lines(on).some((l) => /^tracing /.test(l.msg)), 5000, 'start-up tracing lines');
    assert.deepEqual(lines(off).filter((l) => /^tracing /.test(l.msg)).map((l) => l.tracing), [false]);
    const start = lines(on).filter((l) => /^tracing /.test(l.msg));
    assert.equal(start.length, 1);
    assert.equal(start[0]!.msg, `tracing on: otlp to http://127.0.0.1:${port}/v1/traces`);
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 5; i++) await (await fetch(`${on.url}/a`)).text();
      await new Promise((r) => setTimeout(r, 700));
    }
    await waitFor(() => lines(on).some((l) => l.msg.startsWith('trace export failed')), 15_000, 'export failure warning');
    await new Promise((r) => setTimeout(r, 1500));
    const warns = lines(on).filter((l) => l.msg.startsWith('trace export failed'));
    assert.equal(warns.length, 1, 'rate limited');
    assert.equal(warns[0]!.level, 40);
    assert.doesNotMatch(JSON.stringify(warns[0]), /\\n\s+at |"stack"/);
    await drained(on);
  } finally {
    await off.stop();
    await on.stop();
    await backend.close();
  }
});

test('/readyz: 200 while serving, 503 from the moment draining starts; /healthz stays 200', async () => {
  const backend = await startBackend({ delayMs: 1500 });
  const s = await startSluice(policy(backend.url, 'shutdown: { grace: 10s }\n'));
  try {
    const r = await fetch(`${s.admin}/readyz`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'ready\n');
    const slow = fetch(`${s.url}/a`).then(async (x) => ({ status: x.status, body: await x.text() }));
    await waitFor(async () => (await getJson<{ inFlight: number }>(`${s.admin}/status`)).inFlight === 1, 3000, 'request in flight');
    s.proc.kill('SIGTERM');
    await waitFor(async () => (await fetch(`${s.admin}/readyz`)).status === 503, 2000, '/readyz 503 while draining');
    const nr = await fetch(`${s.admin}/readyz`);
    assert.match(await nr.text(), /draining/);
    assert.equal((await fetch(`${s.admin}/healthz`)).status, 200, 'still alive while draining');
    assert.equal((await slow).status, 200, 'the in-flight request finishes');
    await waitFor(() => s.proc.exitCode !== null, 10_000, 'exit after the drain');
    assert.equal(s.proc.exitCode, 0);
  } finally {
    await s.stop();
    await backend.close();
  }
});

test('admin token: required where admin.requireToken says (default: reload only)', async () => {
  const backend = await startBackend();
  const token = 'a-long-admin-token-0123456789';
  const open = await startSluice(policy(backend.url, `admin: { token: ${token} }\n`));
  const closed = await startSluice(policy(backend.url, `admin: { token: ${token}, requireToken: [reload, status, metrics, dashboard] }\n`));
  try {
    assert.equal((await fetch(`${open.admin}/status`)).status, 200);
    assert.equal((await fetch(`${open.admin}/reload`, { method: 'POST' })).status, 401);
    const auth = { authorization: `Bearer ${token}` };
    for (const path of ['/status', '/metrics', '/dashboard/data']) {
      const no = await fetch(`${closed.admin}${path}`);
      assert.equal(no.status, 401, path);
      assert.equal(no.headers.get('www-authenticate'), 'Bearer realm="sluice-admin"');
      const wrong = await fetch(`${closed.admin}${path}`, { headers: { authorization: 'Bearer nope-nope-nope-nope' } });
      assert.equal(wrong.status, 401, path);
      const yes = await fetch(`${closed.admin}${path}`, { headers: auth });
      assert.equal(yes.status, 200, path);
      await yes.text();
    }
    assert.equal((await fetch(`${closed.admin}/healthz`)).status, 200, 'probes need no token');
    assert.equal((await fetch(`${closed.admin}/readyz`)).status, 200);
    assert.equal((await fetch(`${closed.admin}/dashboard`)).status, 200, 'the static page is public; its data is not');
  } finally {
    await open.stop();
    await closed.stop();
    await backend.close();
  }
});

test('reload that changes the listen or admin address: applied otherwise, and the answer and the log say a restart is needed', async () => {
  const backend = await startBackend();
  const s = await startSluice(policy(backend.url));
  try {
    await writeFile(s.configFile, policy(backend.url, 'listen: { host: 0.0.0.0, port: 8080 }\nadmin: { host: 127.0.0.2 }\n'));
    const r = await fetch(`${s.admin}/reload`, { method: 'POST' });
    const body = (await r.json()) as { ok: boolean; restartRequired?: string[] };
    assert.equal(r.status, 200);
    assert.equal(body.ok, true);
    assert.equal(body.restartRequired?.length, 2, JSON.stringify(body));
    assert.match(body.restartRequired![0]!, /^listen 127\.0\.0\.1:\d+ → 0\.0\.0\.0:\d+: needs a restart/);
    assert.match(body.restartRequired![1]!, /^admin 127\.0\.0\.1:\d+ → 127\.0\.0\.2:\d+: needs a restart/);
    await waitFor(() => lines(s).some((l) => l.msg === 'policy reloaded, but some changes need a restart' && l.level === 40), 3000, 'warning');
    assert.equal((await fetch(`${s.url}/a`)).status, 200, 'still serving on the old address');
    await writeFile(s.configFile, policy(backend.url));
    const same = (await (await fetch(`${s.admin}/reload`, { method: 'POST' })).json()) as { restartRequired?: string[] };
    assert.equal(same.restartRequired, undefined);
    await drained(s);
  } finally {
    await s.stop();
    await backend.close();
  }
});

test('errors.debug: the target address leaves problem details only when on; logs keep it', async () => {
  const port = await closedPort();
  const target = `127.0.0.1:${port}`;
  const quiet = await startSluice(policy(`http://${target}`));
  const loud = await startSluice(policy(`http://${target}`, 'errors: { debug: true }\n'));
  try {
    const q = await fetch(`${quiet.url}/a`);
    const qb = (await q.json()) as { detail: string };
    assert.equal(q.status, 502);
    assert.match(qb.detail, /upstream 'app' unreachable: ECONNREFUSED/);
    assert.doesNotMatch(qb.detail, new RegExp(String(port)));
    const l = await fetch(`${loud.url}/a`);
    const lb = (await l.json()) as { detail: string };
    assert.match(lb.detail, new RegExp(`\\(http://${target.replace(/\./g, '\\.')}\\) unreachable`));
    await waitFor(() => access(quiet).length === 1, 3000, 'access line');
    assert.equal(access(quiet)[0]!.target, `http://${target}`);
    await drained(quiet);
    await drained(loud);
  } finally {
    await quiet.stop();
    await loud.stop();
  }
});

test('serverTiming: all (default), trusted (only to trustedProxies), off', async () => {
  const backend = await startBackend();
  const all = await startSluice(policy(backend.url));
  const trustedOther = await startSluice(policy(backend.url, 'serverTiming: trusted\ntrustedProxies: [10.0.0.0/8]\n'));
  const trustedUs = await startSluice(policy(backend.url, 'serverTiming: trusted\ntrustedProxies: [127.0.0.1, "::1"]\n'));
  const off = await startSluice(policy(backend.url, 'serverTiming: off\n'));
  try {
    const st = async (s: RunningSluice): Promise<string | null> => {
      const r = await fetch(`${s.url}/a`);
      await r.text();
      assert.equal(r.status, 200);
      return r.headers.get('server-timing');
    };
    assert.match((await st(all)) ?? '', /^queue;dur=[\d.]+, upstream;dur=[\d.]+$/);
    assert.equal(await st(trustedOther), null);
    assert.match((await st(trustedUs)) ?? '', /queue;dur=/);
    assert.equal(await st(off), null);
    for (const s of [all, trustedOther, trustedUs, off]) await drained(s);
  } finally {
    for (const s of [all, trustedOther, trustedUs, off]) await s.stop();
    await backend.close();
  }
});

test('hostile clients: resets mid-upload and mid-download still give one access line each, and counts return to zero', async () => {
  const { request } = await import('node:http');
  const backend = await startBackend();
  const s = await startSluice(policy(backend.url).replace('pathPrefix: /a', 'pathPrefix: /'));
  try {
    const u = new URL(s.url);
    // Upload: declare 1 MB, send 10 KB, reset.
    await new Promise<void>((resolve) => {
      const req = request({ host: u.hostname, port: u.port, path: '/count', method: 'POST', headers: { 'content-length': 1_000_000 } });
      req.on('error', () => resolve());
      req.write(Buffer.alloc(10_000, 1));
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 200);
    });
    // Download: a large body, reset after the first chunk.
    await new Promise<void>((resolve) => {
      const req = request({ host: u.hostname, port: u.port, path: '/bytes?n=5000000' }, (res) => {
        res.once('data', () => {
          res.destroy();
          resolve();
        });
      });
      req.on('error', () => resolve());
      req.end();
    });
    // A malformed X-Request-Id with control characters never reaches the upstream or the log.
    const r = await fetch(`${s.url}/a`, { headers: { 'x-request-id': 'a\tb' } });
    await r.text();
    await drained(s);
    await waitFor(() => access(s).length === 3, 5000, 'three access lines');
    const [up, down, ok] = access(s);
    assert.equal(up!.method, 'POST');
    assert.notEqual(up!.outcome, 'forwarded');
    assert.ok((up!.bytesIn as number) <= 10_000);
    assert.equal(down!.path, '/bytes');
    assert.ok((down!.bytesOut as number) < 5_000_000);
    assert.match(String(ok!.request_id), /^[0-9a-f-]{36}$/);
  } finally {
    await s.stop();
    await backend.close();
  }
});
