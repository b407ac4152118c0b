/**
 * HTTPS and HTTP/2 upstreams: verification on by default, TLS failures as 502
 * problem+json naming the cause (never a hang), client certificates to the
 * upstream, h2 over TLS (ALPN) and h2c with one multiplexed session per target,
 * maxConcurrent still counting requests, trailers relayed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:http2';
import WebSocket from 'ws';
import { createServer as createNetServer, type Server as NetServer, type AddressInfo } from 'node:net';
import { startSluice, type RunningSluice } from '../helpers/sluice.js';
import { startBackend, type Backend } from '../helpers/backend.js';
import { closedPort, getJson, waitFor } from '../helpers/net.js';
import { makePki, type Pki } from '../helpers/pki.js';
import { startHttpsBackend, startH2Backend, startH2cBackend, type EchoBackend } from '../helpers/h2-backend.js';

let pki: Pki;
let sluice: RunningSluice;
const b: Record<string, EchoBackend> = {};
let plain: Backend;
let silent: NetServer;

before(async () => {
  pki = await makePki();
  b.good = await startHttpsBackend(pki.server.cert, pki.server.key);
  b.wrong = await startHttpsBackend(pki.wrongHost.cert, pki.wrongHost.key);
  b.expired = await startHttpsBackend(pki.expired.cert, pki.expired.key);
  b.self = await startHttpsBackend(pki.selfSigned.cert, pki.selfSigned.key);
  b.mtls = await startHttpsBackend(pki.server.cert, pki.server.key, await (await import('node:fs/promises')).readFile(pki.clientCaFile, 'utf8'));
  b.h2 = await startH2Backend(pki.server.cert, pki.server.key);
  b.h2c = await startH2cBackend();
  b.h2self = await startH2Backend(pki.selfSigned.cert, pki.selfSigned.key);
  plain = await startBackend();
  const dead = await closedPort();
  // Accepts TCP and never answers the TLS handshake.
  silent = createNetServer((sock) => sock.on('error', () => {}));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const silentPort = (silent.address() as AddressInfo).port;
  const up = (name: string, target: string, extra = ''): string => `  - name: ${name}\n    targets: [${target}]\n${extra}`;
  const ca = `    tls: { ca: ${pki.caFile} }\n`;
  sluice = await startSluice(`upstreams:
${up('good', `https://127.0.0.1:${b.good!.port}`, ca)}
${up('byname', `https://127.0.0.1:${b.good!.port}`, `    tls: { ca: ${pki.caFile}, servername: localhost }\n`)}
${up('noca', `https://127.0.0.1:${b.good!.port}`)}
${up('wrong', `https://127.0.0.1:${b.wrong!.port}`, ca)}
${up('expired', `https://127.0.0.1:${b.expired!.port}`, ca)}
${up('self', `https://127.0.0.1:${b.self!.port}`, ca)}
${up('skip', `https://127.0.0.1:${b.self!.port}`, '    tls: { insecureSkipVerify: true }\n')}
${up('plain', `https://127.0.0.1:${plain.port}`, ca)}
${up('mtls', `https://127.0.0.1:${b.mtls!.port}`, `    tls: { ca: ${pki.caFile}, cert: ${pki.client.certFile}, key: ${pki.client.keyFile} }\n`)}
${up('mtlsnocert', `https://127.0.0.1:${b.mtls!.port}`, ca)}
${up('h2', `https://127.0.0.1:${b.h2!.port}`, `    protocol: h2\n    maxConcurrent: 3\n${ca}`)}
${up('h2c', `http://127.0.0.1:${b.h2c!.port}`, '    protocol: h2c\n    maxConcurrent: 2\n')}
${up('h2slow', `http://127.0.0.1:${b.h2c!.port}`, '    protocol: h2c\n    timeout: 500ms\n')}
${up('h2down', `http://127.0.0.1:${dead}`, '    protocol: h2c\n')}
${up('h2bad', `https://127.0.0.1:${b.h2self!.port}`, `    protocol: h2\n${ca}`)}
${up('stall', `https://127.0.0.1:${silentPort}`, `    connectTimeout: 300ms\n${ca}`)}
${up('h2stall', `https://127.0.0.1:${silentPort}`, `    protocol: h2\n    connectTimeout: 300ms\n${ca}`)}
${up('h2alpn', `https://127.0.0.1:${b.good!.port}`, `    protocol: h2\n${ca}`)}
routes:
${['good', 'byname', 'noca', 'wrong', 'expired', 'self', 'skip', 'plain', 'mtls', 'mtlsnocert', 'h2', 'h2c', 'h2slow', 'h2down', 'h2bad', 'h2alpn', 'stall', 'h2stall']
  .map((n) => `  - match: { pathPrefix: /${n}/ }\n    upstream: ${n}`)
  .join('\n')}
`);
});

after(async () => {
  await sluice.stop();
  await Promise.all(Object.values(b).map((x) => x.close()));
  await plain.close();
  silent.close();
});

interface Status {
  classes: { inFlight: number; queued: number }[];
  upstreams: { name: string; inFlight: number }[];
}

async function idle(): Promise<void> {
  await waitFor(async () => {
    const s = await getJson<Status>(`${sluice.admin}/status`);
    return s.upstreams.every((u) => u.inFlight === 0) && s.classes.every((c) => c.queued === 0 && c.inFlight === 0);
  }, 10_000, 'the proxy to be idle');
}

interface Echo {
  path: string;
  httpVersion: string;
  servername: string | null;
  clientCert: string | null;
  headers: Record<string, string>;
  body: string;
}

test('https upstream verified against the configured CA; SNI from the target or tls.servername', async () => {
  const r = await fetch(`${sluice.url}/good/x`, { method: 'POST', body: 'payload' });
  assert.equal(r.status, 200);
  const e = (await r.json()) as Echo;
  assert.equal(e.body, 'payload');
  assert.equal(e.httpVersion, '1.1');
  assert.equal(e.servername, false, 'no SNI for an IP target (checked against the IP SAN)');
  const n = (await (await fetch(`${sluice.url}/byname/x`)).json()) as Echo;
  assert.equal(n.servername, 'localhost');
  // Keep-alive: a second request reuses the pooled TLS connection.
  const before = b.good!.connections;
  for (let i = 0; i < 3; i++) assert.equal((await fetch(`${sluice.url}/good/again`)).status, 200);
  assert.ok(b.good!.connections - before <= 1, 'TLS connections are pooled');
  await idle();
});

for (const [path, cause] of [
  ['noca', /unknown authority/],
  ['self', /unknown authority/],
  ['wrong', /hostname mismatch/],
  ['expired', /expired/],
  ['plain', /does not speak TLS/],
  ['h2bad', /unknown authority/],
  ['h2alpn', /does not offer HTTP\/2/],
] as const) {
  test(`TLS failure /${path}: 502 problem+json whose detail names the cause, at once`, async () => {
    const t0 = Date.now();
    const r = await fetch(`${sluice.url}/${path}/x`);
    assert.equal(r.status, 502);
    assert.equal(r.headers.get('content-type'), 'application/problem+json');
    const p = (await r.json()) as { type: string; detail: string };
    assert.match(p.detail, cause);
    assert.equal(p.type, 'urn:sluice:error:upstream-tls');
    assert.ok(Date.now() - t0 < 3000, 'no hang');
    await idle();
  });
}

for (const path of ['stall', 'h2stall']) {
  test(`a target that never answers the TLS handshake (/${path}): 502 after connectTimeout, not a hang`, async () => {
    const t0 = Date.now();
    const r = await fetch(`${sluice.url}/${path}/x`);
    assert.equal(r.status, 502);
    assert.match(((await r.json()) as { detail: string }).detail, /timed out|ETIMEDOUT/);
    assert.ok(Date.now() - t0 < 4000, `answered after ${Date.now() - t0} ms`);
    await idle();
  });
}

test('insecureSkipVerify accepts any certificate', async () => {
  assert.equal((await fetch(`${sluice.url}/skip/x`)).status, 200);
  await idle();
});

test('a client certificate is presented to an upstream that requires one', async () => {
  const r = await fetch(`${sluice.url}/mtls/x`);
  assert.equal(r.status, 200);
  assert.equal(((await r.json()) as Echo).clientCert, 'partner-a');
  const without = await fetch(`${sluice.url}/mtlsnocert/x`);
  assert.equal(without.status, 502);
  await idle();
});

async function h2Get(path: string, n: number): Promise<{ status: number; body: string; trailers: Record<string, unknown> }[]> {
  const session = connect(sluice.url);
  try {
    return await Promise.all(
      Array.from(
        { length: n },
        () =>
          new Promise<{ status: number; body: string; trailers: Record<string, unknown> }>((resolve, reject) => {
            const s = session.request({ ':path': path });
            let status = 0;
            let body = '';
            let trailers: Record<string, unknown> = {};
            s.on('response', (h) => (status = Number(h[':status'])));
            s.on('trailers', (t) => (trailers = t));
            s.setEncoding('utf8');
            s.on('data', (d: string) => (body += d));
            s.on('end', () => resolve({ status, body, trailers }));
            s.on('error', reject);
          }),
      ),
    );
  } finally {
    session.close();
  }
}

for (const proto of ['h2', 'h2c'] as const) {
  test(`${proto} upstream: HTTP/2 on one multiplexed session; maxConcurrent still counts requests`, async () => {
    const be = b[proto]!;
    const cap = proto === 'h2' ? 3 : 2;
    be.maxInFlight = 0;
    const before = be.connections;
    const rs = await h2Get(`/${proto}/load?delay=80`, 12);
    assert.deepEqual(rs.map((r) => r.status), Array(12).fill(200));
    for (const r of rs) assert.equal((JSON.parse(r.body) as Echo).httpVersion, '2.0');
    assert.ok(be.maxInFlight <= cap, `backend saw ${be.maxInFlight} at once, cap ${cap}`);
    assert.ok(be.maxInFlight >= 2, 'requests were multiplexed');
    assert.ok(be.connections - before <= 1, `one session per target (${be.connections - before} new connections)`);
    // POST bodies and HTTP/1.1 clients too.
    const post = await fetch(`${sluice.url}/${proto}/post`, { method: 'POST', body: 'x'.repeat(100_000) });
    assert.equal(((await post.json()) as Echo).body.length, 100_000);
    await idle();
  });

  test(`${proto} upstream: response trailers reach an HTTP/2 client`, async () => {
    const [r] = await h2Get(`/${proto}/trailers`, 1);
    assert.equal(r!.status, 200);
    assert.equal(r!.trailers['x-checksum'], String(r!.body.length));
    await idle();
  });
}

test('h2c upstream that sends GOAWAY: new requests go to a new session, none fails', async () => {
  const be = b.h2c!;
  const before = be.connections;
  for (let i = 0; i < 3; i++) {
    const r = await fetch(`${sluice.url}/h2c/goaway`);
    assert.equal(r.status, 200);
    await r.text();
    const after = await fetch(`${sluice.url}/h2c/after`);
    assert.equal(after.status, 200);
    await after.text();
  }
  assert.ok(be.connections - before >= 3, `a new session after each GOAWAY (${be.connections - before} connections)`);
  await idle();
});

for (const what of ['rst', 'kill'] as const) {
  test(`h2c upstream that ${what === 'rst' ? 'resets the stream' : 'drops the session'} mid-response: the client sees a failure, not a truncated success`, async () => {
    const session = connect(sluice.url);
    const outcome = await new Promise<string>((resolve) => {
      const s = session.request({ ':path': `/h2c/${what}` });
      let body = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (body += d));
      s.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code}`));
      let ended = false;
      s.on('end', () => (ended = true));
      s.on('close', () => resolve(ended && s.rstCode === 0 ? `clean end: ${body}` : `reset ${s.rstCode} (end seen: ${ended})`));
    });
    session.close();
    assert.doesNotMatch(outcome, /clean end/);
    // The next request gets a working stream (a new session after /kill).
    assert.equal((await fetch(`${sluice.url}/h2c/next`)).status, 200);
    await idle();
  });
}

test('h2c upstream that sends no response headers within timeout: 504, and its stream is cancelled', async () => {
  const t0 = Date.now();
  const r = await fetch(`${sluice.url}/h2slow/x?delay=3000`);
  assert.equal(r.status, 504);
  assert.ok(Date.now() - t0 < 2500, `answered after ${Date.now() - t0} ms`);
  await waitFor(() => b.h2c!.inFlight === 0, 5000, 'the upstream stream to be cancelled');
  await idle();
});

test('h2c upstream down: 502 at once, and counts return to zero', async () => {
  const t0 = Date.now();
  const r = await fetch(`${sluice.url}/h2down/x`);
  assert.equal(r.status, 502);
  assert.match(((await r.json()) as { detail: string }).detail, /unreachable/);
  assert.ok(Date.now() - t0 < 3000);
  await idle();
});

test('h2 upstream: a client that resets mid-response frees the slot and the upstream stream', async () => {
  const session = connect(sluice.url);
  const s = session.request({ ':path': '/h2/slow?delay=2000' });
  s.on('error', () => {});
  await waitFor(() => b.h2!.inFlight === 1, 5000, 'the request to reach the backend');
  s.close(8); // CANCEL
  await waitFor(() => b.h2!.inFlight === 0, 5000, 'the backend stream to be cancelled');
  session.close();
  await idle();
});

test('WebSocket to an https upstream goes over TLS with its settings', async () => {
  const ws = new WebSocket(`${sluice.url.replace('http://', 'ws://')}/good/socket`);
  const reply = await new Promise<string>((resolve, reject) => {
    ws.on('open', () => ws.send('ping'));
    ws.on('message', (m) => resolve(m.toString()));
    ws.on('error', reject);
  });
  assert.equal(reply, 'tls-echo:ping');
  ws.close();
  await idle();
});
