import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:http2';
import { request } from 'node:http';
import WebSocket from 'ws';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startSluice, simplePolicy, type RunningSluice } from '../helpers/sluice.js';
import { run } from '../helpers/net.js';
import { assertDrained } from '../helpers/invariants.js';

let backend: Backend;
let sluice: RunningSluice;

before(async () => {
  backend = await startBackend();
  sluice = await startSluice(simplePolicy(backend.url, '', '    maxConcurrent: 32\n'));
});

after(async () => {
  try {
    // The invariant: when traffic stops, every in-flight and queued count is zero.
    await assertDrained(sluice.admin);
  } finally {
    assert.equal(await sluice.stop('SIGTERM'), 0, 'SIGTERM exits 0');
  }
  await backend.close();
});

test('HTTP/1.1: GET and POST are forwarded with X-Forwarded-* and Server-Timing', async () => {
  const r = await fetch(`${sluice.url}/hello?x=1`, { headers: { 'x-custom': 'v' } });
  assert.equal(r.status, 200);
  const body = (await r.json()) as { method: string; url: string; headers: Record<string, string> };
  assert.equal(body.url, '/hello?x=1');
  assert.equal(body.headers['x-custom'], 'v');
  assert.equal(body.headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(body.headers['x-forwarded-proto'], 'http');
  assert.equal(body.headers['x-forwarded-host'], new URL(sluice.url).host);
  assert.match(body.headers.forwarded!, /^for=127\.0\.0\.1;proto=http;host="127\.0\.0\.1:\d+"$/);
  assert.match(r.headers.get('server-timing')!, /^queue;dur=\d+(\.\d+)?, upstream;dur=\d+(\.\d+)?$/);
  assert.equal(r.headers.get('x-backend'), 'yes');

  const p = await fetch(`${sluice.url}/echo`, { method: 'POST', body: 'payload-123' });
  assert.equal(((await p.json()) as { body: string }).body, 'payload-123');
});

test('hop-by-hop headers are removed, including those named by Connection', async () => {
  const body = await new Promise<string>((resolve, reject) => {
    const req = request(`${sluice.url}/hop`, {
      headers: { connection: 'keep-alive, x-hop', 'x-hop': 'secret', 'keep-alive': 'timeout=5', te: 'trailers', 'proxy-authorization': 'x' },
    });
    req.on('response', (res) => {
      let b = '';
      res.setEncoding('utf8').on('data', (d: string) => (b += d)).on('end', () => resolve(b));
    });
    req.on('error', reject);
    req.end();
  });
  const h = (JSON.parse(body) as { headers: Record<string, string> }).headers;
  assert.equal(h['x-hop'], undefined);
  assert.equal(h['keep-alive'], undefined);
  assert.equal(h.te, undefined);
  assert.equal(h['proxy-authorization'], undefined);
});

test('a client cannot forge X-Forwarded-For through an untrusted hop', async () => {
  const r = await fetch(`${sluice.url}/xff`, { headers: { 'x-forwarded-for': '6.6.6.6' } });
  const h = ((await r.json()) as { headers: Record<string, string> }).headers;
  assert.equal(h['x-forwarded-for'], '127.0.0.1');
});

test('HTTP/2 cleartext (prior knowledge) on the same port: concurrent streams, bodies both ways', async () => {
  const session = connect(sluice.url);
  try {
    const one = (path: string, body?: string) =>
      new Promise<{ status: number; body: string; timing: string }>((resolve, reject) => {
        const s = session.request({ ':path': path, ':method': body ? 'POST' : 'GET' });
        let b = '';
        let status = 0;
        let timing = '';
        s.on('response', (h) => {
          status = Number(h[':status']);
          timing = String(h['server-timing']);
        });
        s.setEncoding('utf8').on('data', (d: string) => (b += d));
        s.on('end', () => resolve({ status, body: b, timing }));
        s.on('error', reject);
        s.end(body);
      });
    const results = await Promise.all([one('/a'), one('/b'), one('/c', 'h2-body')]);
    assert.deepEqual(results.map((r) => r.status), [200, 200, 200]);
    const c = JSON.parse(results[2]!.body) as { body: string; headers: Record<string, string> };
    assert.equal(c.body, 'h2-body');
    assert.equal(c.headers['x-forwarded-for'], '127.0.0.1');
    assert.match(results[0]!.timing, /queue;dur=/);
  } finally {
    session.close();
  }
});

test('curl over HTTP/1.1 and HTTP/2 prior knowledge', async () => {
  const h1 = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{http_version}', `${sluice.url}/curl1`]);
  assert.equal(h1.stdout, '200 1.1', h1.stderr);
  const h2 = await run('curl', ['-s', '--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_code} %{http_version}', `${sluice.url}/curl2`]);
  assert.equal(h2.stdout, '200 2', h2.stderr);
});

test('WebSocket upgrades are proxied both ways', async () => {
  const ws = new WebSocket(`${sluice.url.replace('http', 'ws')}/ws`);
  const reply = await new Promise<string>((resolve, reject) => {
    ws.on('open', () => ws.send('ping'));
    ws.on('message', (m) => resolve(m.toString()));
    ws.on('error', reject);
  });
  assert.equal(reply, 'echo:ping');
  ws.close();
});

test('1 GiB download and 1 GiB upload stream through with flat memory', async () => {
  const GiB = 1024 * 1024 * 1024;
  let peak = await sluice.rss();
  const sampler = setInterval(() => void sluice.rss().then((r) => (peak = Math.max(peak, r))), 100);
  try {
    // Download: count bytes without keeping them.
    const got = await new Promise<number>((resolve, reject) => {
      const req = request(`${sluice.url}/bytes?n=${GiB}`, (res) => {
        let n = 0;
        res.on('data', (d: Buffer) => (n += d.length));
        res.on('end', () => resolve(n));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(got, GiB);
    // Upload: a generator of chunks, never the whole body.
    const counted = await new Promise<number>((resolve, reject) => {
      const req = request(`${sluice.url}/count`, { method: 'POST', headers: { 'content-length': GiB } }, (res) => {
        let b = '';
        res.setEncoding('utf8').on('data', (d: string) => (b += d)).on('end', () => resolve((JSON.parse(b) as { bytes: number }).bytes));
      });
      req.on('error', reject);
      const chunk = Buffer.alloc(256 * 1024, 98);
      let sent = 0;
      const pump = (): void => {
        while (sent < GiB) {
          sent += chunk.length;
          if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    });
    assert.equal(counted, GiB);
  } finally {
    clearInterval(sampler);
  }
  assert.ok(peak < 200 * 1024 * 1024, `proxy RSS peaked at ${(peak / 1048576).toFixed(0)} MiB`);
});

test('an open WebSocket holds an upstream slot like a request does', async () => {
  const local = await startSluice(simplePolicy(backend.url, '', '    maxConcurrent: 1\n'));
  try {
    const ws = new WebSocket(`${local.url.replace('http', 'ws')}/ws`);
    await new Promise<void>((resolve, reject) => {
      ws.on('open', () => resolve());
      ws.on('error', reject);
    });
    const t0 = Date.now();
    const pending = fetch(`${local.url}/after-ws`).then((r) => r.status);
    await new Promise((r) => setTimeout(r, 300));
    const st = (await (await fetch(`${local.admin}/status`)).json()) as { queued: number; inFlight: number };
    assert.equal(st.inFlight, 1);
    assert.equal(st.queued, 1, 'the request waits for the WebSocket slot');
    ws.close();
    assert.equal(await pending, 200);
    assert.ok(Date.now() - t0 >= 300);
  } finally {
    await local.stop();
  }
});
