/**
 * Host and Upgrade by the RFCs (issue #10, items 5 and 6), over HTTP/1.1, HTTP/2 and WebSocket:
 * duplicate or invalid Host / :authority → 400 and never forwarded; absolute-form targets
 * routed by their authority and forwarded in origin-form; the client's Host kept upstream
 * (or the target's with hostRewrite); non-WebSocket upgrades ignored and served normally.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { connect as h2Connect } from 'node:http2';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { startSluice, type RunningSluice } from '../helpers/sluice.js';
import { startRecorder, type Recorder } from '../helpers/recorder.js';
import { assertDrained } from '../helpers/invariants.js';
import { startBackend, type Backend } from '../helpers/backend.js';
import { run, statusOf } from '../helpers/net.js';

let rec: Recorder;
let ws: Backend;
let sluice: RunningSluice;
let port: number;
const H2RAW = fileURLToPath(new URL('../helpers/h2raw.py', import.meta.url));

before(async () => {
  rec = await startRecorder();
  ws = await startBackend();
  sluice = await startSluice(`upstreams:
  - name: app
    targets: [${rec.url}]
  - name: other
    targets: [${rec.url}]
    hostRewrite: target
  - name: literal
    targets: [${rec.url}]
    hostRewrite: internal.example:8443
  - name: sockets
    targets: [${ws.url}]
routes:
  - match: { host: other.example }
    upstream: other
  - match: { host: literal.example }
    upstream: literal
  - match: { pathPrefix: /ws }
    upstream: sockets
  - match: { pathPrefix: / }
    upstream: app
`);
  port = Number(new URL(sluice.url).port);
});

after(async () => {
  await sluice.stop();
  await rec.close();
  await ws.close();
});

function raw(bytes: string, waitMs = 2000, untilClose = false): Promise<string> {
  return new Promise((resolve) => {
    const s = netConnect(port, '127.0.0.1');
    let out = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      out += d;
      if (untilClose) return;
      const i = out.indexOf('\r\n\r\n');
      const len = Number(/content-length: (\d+)/i.exec(out)?.[1] ?? -1);
      if (i !== -1 && len >= 0 && out.length >= i + 4 + len) s.destroy();
      if (i !== -1 && /transfer-encoding: chunked/i.test(out.slice(0, i)) && out.endsWith('0\r\n\r\n')) s.destroy();
    });
    s.on('error', () => resolve(out));
    s.on('close', () => resolve(out));
    setTimeout(() => s.destroy(), waitMs);
    s.write(bytes);
  });
}

const last = (): { url: string; host: string | undefined; xfh: string | undefined } => {
  const r = rec.requests.at(-1)!;
  return { url: r.url, host: r.headers.host, xfh: r.headers['x-forwarded-host'] as string | undefined };
};

const badHosts: [string, string][] = [
  ['missing Host', ''],
  ['duplicate Host', 'Host: a.example\r\nHost: b.example\r\n'],
  ['duplicate Host, different case', 'Host: a.example\r\nhOST: b.example\r\n'],
  ['duplicate Host, same value', 'Host: a.example\r\nHost: a.example\r\n'],
  ['path in Host', 'Host: a.example/evil\r\n'],
  ['userinfo in Host', 'Host: user@a.example\r\n'],
  ['userinfo and password in Host', 'Host: user:pw@a.example\r\n'],
  ['non-numeric port', 'Host: a.example:abc\r\n'],
  ['port out of range', 'Host: a.example:99999\r\n'],
  ['space in Host', 'Host: a .example\r\n'],
  ['unclosed IPv6 literal', 'Host: [::1\r\n'],
  ['bad IPv6 literal', 'Host: [zz::1]:80\r\n'],
];

for (const [name, hostLines] of badHosts) {
  test(`HTTP/1.1 ${name}: 400, not forwarded`, async () => {
    rec.requests.length = 0;
    const resp = await raw(`GET /h1-bad HTTP/1.1\r\n${hostLines}\r\n`);
    assert.equal(statusOf(resp), 400, resp.slice(0, 200));
    assert.match(resp, /application\/problem\+json/);
    assert.equal(rec.requests.length, 0);
  });
}

test('HTTP/1.1 valid Hosts are accepted and preserved upstream; X-Forwarded-Host is the checked value', async () => {
  for (const h of ['a.example', 'a.example:8080', '127.0.0.1:1', '[::1]:8080', 'xn--bcher-kva.example', 'A.Example']) {
    rec.requests.length = 0;
    const resp = await raw(`GET /h1-ok HTTP/1.1\r\nHost: ${h}\r\nX-Forwarded-Host: forged.example\r\n\r\n`);
    assert.equal(statusOf(resp), 200, `${h}: ${resp.slice(0, 200)}`);
    assert.deepEqual(last(), { url: '/h1-ok', host: h, xfh: h });
  }
  await assertDrained(sluice.admin);
});

test('absolute-form target: its authority routes and is sent as Host; the upstream gets origin-form', async () => {
  rec.requests.length = 0;
  let resp = await raw('GET http://other.example/x?q=1 HTTP/1.1\r\nHost: a.example\r\n\r\n');
  assert.equal(statusOf(resp), 200, resp.slice(0, 200));
  // Routed to `other` (by the target's authority, not Host), which rewrites Host to the target.
  assert.deepEqual(last(), { url: '/x?q=1', host: `127.0.0.1:${rec.port}`, xfh: 'other.example' });
  resp = await raw('GET HTTP://Plain.Example:81 HTTP/1.1\r\nHost: a.example\r\n\r\n');
  assert.equal(statusOf(resp), 200);
  assert.deepEqual(last(), { url: '/', host: 'Plain.Example:81', xfh: 'Plain.Example:81' });
  for (const bad of ['http://user@a.example/x', 'http://a.example:xx/x', 'ftp://a.example/x', 'http:///x', 'a.example/x']) {
    rec.requests.length = 0;
    resp = await raw(`GET ${bad} HTTP/1.1\r\nHost: a.example\r\n\r\n`);
    assert.equal(statusOf(resp), 400, `${bad}: ${resp.slice(0, 200)}`);
    assert.equal(rec.requests.length, 0);
  }
  await assertDrained(sluice.admin);
});

test('hostRewrite: the client Host by default, the target with `target`, a literal value otherwise', async () => {
  rec.requests.length = 0;
  await raw('GET /d HTTP/1.1\r\nHost: keep.example:9000\r\n\r\n');
  assert.equal(last().host, 'keep.example:9000');
  await raw('GET /t HTTP/1.1\r\nHost: other.example\r\n\r\n');
  assert.equal(last().host, `127.0.0.1:${rec.port}`);
  assert.equal(last().xfh, 'other.example');
  await raw('GET /l HTTP/1.1\r\nHost: literal.example\r\n\r\n');
  assert.equal(last().host, 'internal.example:8443');
  await assertDrained(sluice.admin);
});

async function h2raw(headers: string[][]): Promise<{ status: number | null; reset: number | null }> {
  const r = await run('/usr/bin/python3', [H2RAW, '127.0.0.1', String(port), JSON.stringify({ streams: [{ headers, end: true }], wait: 3 })]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { streams: Record<string, { status: number | null; reset: number | null }> }).streams['1']!;
}

test('HTTP/2: invalid :authority or Host, duplicate Host, and Host disagreeing with :authority get 400', async () => {
  const base = [[':method', 'GET'], [':scheme', 'http'], [':path', '/h2-bad']];
  const cases: [string, string[][]][] = [
    ['userinfo in :authority', [...base, [':authority', 'user@a.example']]],
    ['path in :authority', [...base, [':authority', 'a.example/evil']]],
    ['bad port in :authority', [...base, [':authority', 'a.example:70000']]],
    ['invalid Host', [...base, ['host', 'a.example/evil']]],
    ['duplicate Host', [...base, ['host', 'a.example'], ['host', 'b.example']]],
    ['Host disagrees with :authority', [...base, [':authority', 'a.example'], ['host', 'b.example']]],
  ];
  rec.requests.length = 0;
  for (const [name, headers] of cases) {
    const s = await h2raw(headers);
    assert.ok(s.status === 400 || s.reset !== null, `${name}: ${JSON.stringify(s)}`);
  }
  assert.equal(rec.requests.length, 0, 'nothing forwarded');
  const ok = await h2raw([...base.slice(0, 2), [':path', '/h2-ok'], [':authority', 'a.example:1'], ['host', 'A.example:1']]);
  assert.equal(ok.status, 200);
  assert.deepEqual(last(), { url: '/h2-ok', host: 'a.example:1', xfh: 'a.example:1' });
  await assertDrained(sluice.admin);
});

test('HTTP/2: the client :authority is preserved upstream as Host', async () => {
  const session = h2Connect(sluice.url);
  try {
    rec.requests.length = 0;
    await new Promise<void>((resolve, reject) => {
      const s = session.request({ ':path': '/h2-host', ':authority': 'svc.example:8443' });
      s.resume();
      s.on('end', resolve);
      s.on('error', reject);
    });
    assert.deepEqual(last(), { url: '/h2-host', host: 'svc.example:8443', xfh: 'svc.example:8443' });
  } finally {
    session.close();
  }
});

test('Upgrade: h2c (curl --http2 over cleartext) is ignored and served over HTTP/1.1', async () => {
  rec.requests.length = 0;
  const r = await run('curl', ['-s', '--http2', '-o', '/dev/null', '-w', '%{http_code} %{http_version}', `${sluice.url}/h2c-upgrade`]);
  assert.equal(r.stdout, '200 1.1', r.stderr);
  assert.equal(last().url, '/h2c-upgrade');
  const h = rec.requests.at(-1)!.headers;
  assert.equal(h.upgrade, undefined);
  assert.equal(h['http2-settings'], undefined);
  // With a body, and on the same keep-alive connection afterwards.
  const resp = await raw(
    'POST /h2c-post HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 5\r\n\r\nhello' +
      'GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    3000,
    true,
  );
  assert.equal([...resp.matchAll(/HTTP\/1\.1 200/g)].length, 2, resp.slice(0, 300));
  // Pipelined requests may reach the upstream in either order (a body is buffered before its slot).
  const tail = rec.requests.slice(-2).map((x) => `${x.method} ${x.url} ${x.body}`).sort();
  assert.deepEqual(tail, ['GET /after ', 'POST /h2c-post hello']);
  await assertDrained(sluice.admin);
});

test('Upgrade: an ignored upgrade pipelined behind a slow request is answered in order on the same connection', async () => {
  rec.requests.length = 0;
  const resp = await raw(
    'GET /pipe-slow?delay=400 HTTP/1.1\r\nHost: x\r\n\r\n' +
      'GET /pipe-up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n' +
      'GET /pipe-last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    4000,
    true,
  );
  const order = [...resp.matchAll(/"url":"([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(order, ['/pipe-slow?delay=400', '/pipe-up', '/pipe-last'], resp.slice(0, 400));
  await assertDrained(sluice.admin);
});

test('Upgrade: websocket on a non-GET is ignored and served normally; an unknown upgrade too', async () => {
  rec.requests.length = 0;
  let resp = await raw('POST /post-ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 2\r\n\r\nhi');
  assert.equal(statusOf(resp), 200, resp.slice(0, 200));
  assert.equal(last().url, '/post-ws');
  assert.equal(rec.requests.at(-1)!.body, 'hi');
  resp = await raw('GET /tls-up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: TLS/1.2\r\n\r\n');
  assert.equal(statusOf(resp), 200, resp.slice(0, 200));
  assert.equal(last().url, '/tls-up');
  await assertDrained(sluice.admin);
});

test('Upgrade: WebSocket is matched case-insensitively and proxied', async () => {
  const key = Buffer.from('0123456789abcdef').toString('base64');
  const resp = await raw(
    `GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`,
    1000,
  );
  assert.match(resp, /^HTTP\/1\.1 101 /, resp.slice(0, 200));
  const sock = new WebSocket(`${sluice.url.replace('http', 'ws')}/ws`);
  const echoed = await new Promise<string>((resolve, reject) => {
    sock.on('open', () => sock.send('ping'));
    sock.on('message', (m) => resolve(m.toString()));
    sock.on('error', reject);
  });
  sock.close();
  assert.equal(echoed, 'echo:ping');
  await assertDrained(sluice.admin);
});

test('WebSocket handshake with a bad Host or a body: 400, never forwarded', async () => {
  const key = Buffer.from('0123456789abcdef').toString('base64');
  const hs = (extra: string): string =>
    `GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n${extra}\r\n`;
  for (const extra of ['Host: user@x\r\n', 'Host: a\r\nHost: b\r\n', 'Host: x\r\nContent-Length: 3\r\n']) {
    const resp = await raw(hs(extra) + (extra.includes('Content-Length') ? 'abc' : ''));
    assert.equal(statusOf(resp), 400, `${JSON.stringify(extra)}: ${resp.slice(0, 200)}`);
  }
  await assertDrained(sluice.admin);
});

test('WebSocket handshake: the client Host goes upstream, an absolute-form target is forwarded in origin-form', async () => {
  // The recorder does not speak WebSocket: it records the handshake as a plain request and answers 200.
  rec.requests.length = 0;
  const key = Buffer.from('0123456789abcdef').toString('base64');
  await raw(
    `GET http://WS.example:8080/rec-ws?x=1 HTTP/1.1\r\nHost: ignored.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`,
    1000,
  );
  const r = rec.requests.at(-1);
  assert.ok(r, 'handshake reached the upstream');
  assert.equal(r.url, '/rec-ws?x=1');
  assert.equal(r.headers.host, 'WS.example:8080');
  assert.equal(r.headers['x-forwarded-host'], 'WS.example:8080');
  assert.equal(r.headers.upgrade, 'websocket');
  await assertDrained(sluice.admin);
});

test('CONNECT is answered 405 (a reverse proxy is not a tunnel), never dropped silently or forwarded', async () => {
  rec.requests.length = 0;
  const resp = await raw('CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n', 2000, true);
  assert.match(resp, /^HTTP\/1\.1 405 /);
  assert.match(resp, /application\/problem\+json/);
  assert.equal(rec.requests.length, 0);
  await assertDrained(sluice.admin);
});
