/**
 * Inbound TLS: ALPN h2 and http/1.1 on one port (curl, node https and http2),
 * a cleartext listener beside it, SNI certificates, minVersion, client
 * certificates (mTLS) and the clientCert class matcher, X-Forwarded-Proto,
 * certificates replaced on reload without dropping open connections, and
 * certificate errors at start-up and reload naming the file.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { connect as h2Connect, type ClientHttp2Session } from 'node:http2';
import { startSluice, runCli, writePolicy, type RunningSluice } from '../helpers/sluice.js';
import { startBackend, type Backend } from '../helpers/backend.js';
import { getJson, waitFor } from '../helpers/net.js';
import WebSocket from 'ws';
import { makePki, type Pki } from '../helpers/pki.js';

const run = promisify(execFile);

let pki: Pki;
let backend: Backend;
let sluice: RunningSluice;
/** Listener URLs: [0] TLS (SNI, live cert files), [1] cleartext, [2] TLS 1.3 + optional mTLS, [3] mTLS required. */
let urls: string[];
let liveCert: string;
let liveKey: string;

interface Status {
  classes: { name: string; inFlight: number; queued: number; served: number }[];
  upstreams: { inFlight: number }[];
}

before(async () => {
  pki = await makePki();
  backend = await startBackend();
  liveCert = join(pki.dir, 'live.crt');
  liveKey = join(pki.dir, 'live.key');
  await copyFile(pki.server.certFile, liveCert);
  await copyFile(pki.server.keyFile, liveKey);
  const mtls = `clientCa: ${pki.clientCaFile}`;
  sluice = await startSluice(`listen:
  - host: 127.0.0.1
    port: 0
    tls:
      certificates:
        - { cert: ${liveCert}, key: ${liveKey} }
        - { cert: ${pki.other.certFile}, key: ${pki.other.keyFile}, serverNames: [other.test, "*.other.test"] }
  - { host: 127.0.0.1, port: 0 }
  - { host: 127.0.0.1, port: 0, tls: { cert: ${pki.server.certFile}, key: ${pki.server.keyFile}, minVersion: TLSv1.3, ${mtls} } }
  - { host: 127.0.0.1, port: 0, tls: { cert: ${pki.server.certFile}, key: ${pki.server.keyFile}, ${mtls}, requireClientCert: true } }
upstreams:
  - name: app
    targets: [${backend.url}]
routes:
  - upstream: app
classes:
  - name: partner
    match: { clientCert: { cn: partner-a, san: partner.example.com } }
  - name: other
defaultClass: other
`);
  urls = [sluice.url, ...sluice.also];
});

after(async () => {
  await sluice.stop();
  await backend.close();
});

async function idle(): Promise<void> {
  await waitFor(async () => {
    const s = await getJson<Status>(`${sluice.admin}/status`);
    return s.upstreams.every((u) => u.inFlight === 0) && s.classes.every((c) => c.queued === 0 && c.inFlight === 0);
  }, 10_000, 'the proxy to be idle');
}

const served = async (name: string): Promise<number> =>
  (await getJson<Status>(`${sluice.admin}/status`)).classes.find((c) => c.name === name)!.served;

const port = (url: string): number => Number(new URL(url).port);

interface Echo {
  headers: Record<string, string>;
}

async function curl(args: string[]): Promise<{ body: string; version: string }> {
  const { stdout } = await run('curl', ['-sS', '--max-time', '10', '-w', '\n%{http_version}', ...args]);
  const i = stdout.lastIndexOf('\n');
  return { body: stdout.slice(0, i), version: stdout.slice(i + 1) };
}

/** A handshake only: the certificate the server chose, or the handshake error. */
function handshake(p: number, opts: ConnectionOptions): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port: p, ca: pki.ca, ...opts }, () => {
      const c = s.getPeerCertificate();
      s.end();
      resolve(c);
    });
    s.on('error', reject);
  });
}

function httpsGet(url: string, opts: RequestOptions = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca: pki.ca, agent: false, ...opts }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function h2Get(session: ClientHttp2Session, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = session.request({ ':path': path });
    let status = 0;
    let body = '';
    s.on('response', (h) => (status = Number(h[':status'])));
    s.setEncoding('utf8');
    s.on('data', (d: string) => (body += d));
    s.on('end', () => resolve({ status, body }));
    s.on('error', reject);
  });
}

test('curl over TLS negotiates HTTP/2 or HTTP/1.1 by ALPN on one port; backends see https', async () => {
  const h2 = await curl(['--http2', '--cacert', pki.caFile, `${urls[0]}/a`]);
  assert.equal(h2.version, '2');
  const e = JSON.parse(h2.body) as Echo;
  assert.equal(e.headers['x-forwarded-proto'], 'https');
  assert.match(e.headers.forwarded!, /proto=https/);
  const h1 = await curl(['--http1.1', '--cacert', pki.caFile, `${urls[0]}/b`]);
  assert.equal(h1.version, '1.1');
  assert.equal((JSON.parse(h1.body) as Echo).headers['x-forwarded-proto'], 'https');
  // The cleartext listener beside it.
  const clear = await curl(['--http2-prior-knowledge', `${urls[1]}/c`]);
  assert.equal(clear.version, '2');
  assert.equal((JSON.parse(clear.body) as Echo).headers['x-forwarded-proto'], 'http');
  await idle();
});

test('node https and http2 clients over TLS', async () => {
  const r = await httpsGet(`${urls[0]}/node-h1`);
  assert.equal(r.status, 200);
  const session = h2Connect(urls[0]!, { ca: pki.ca });
  const rs = await Promise.all([h2Get(session, '/h2-a'), h2Get(session, '/h2-b')]);
  assert.deepEqual(rs.map((x) => x.status), [200, 200]);
  assert.equal(session.alpnProtocol, 'h2');
  session.close();
  await idle();
});

test('WebSocket over TLS (wss://) through the TLS listener', async () => {
  const ws = new WebSocket(`${urls[0]!.replace('https://', 'wss://')}/socket`, { ca: pki.ca });
  const reply = await new Promise<string>((resolve, reject) => {
    ws.on('open', () => ws.send('hello'));
    ws.on('message', (m) => resolve(m.toString()));
    ws.on('error', reject);
  });
  assert.equal(reply, 'echo:hello');
  ws.close();
  await idle();
});

test('SNI picks the certificate; unknown or absent names get the first', async () => {
  assert.equal((await handshake(port(urls[0]!), { servername: 'other.test' })).subject.CN, 'other.test');
  assert.equal((await handshake(port(urls[0]!), { servername: 'api.other.test', checkServerIdentity: () => undefined })).subject.CN, 'other.test');
  assert.equal((await handshake(port(urls[0]!), { servername: 'localhost' })).subject.CN, 'localhost');
  assert.equal((await handshake(port(urls[0]!), {})).subject.CN, 'localhost');
  // The certificate of other.test verifies for that name (curl checks it against the CA).
  const viaCurl = await curl(['--http2', '--cacert', pki.caFile, '--resolve', `other.test:${port(urls[0]!)}:127.0.0.1`, `https://other.test:${port(urls[0]!)}/sni`]);
  assert.equal(viaCurl.version, '2');
  await idle();
});

test('minVersion: a TLS 1.2-only client is refused where TLSv1.3 is required, accepted by default', async () => {
  await assert.rejects(handshake(port(urls[2]!), { maxVersion: 'TLSv1.2' }));
  const ok = await handshake(port(urls[0]!), { maxVersion: 'TLSv1.2' });
  assert.equal(ok.subject.CN, 'localhost');
});

test('mTLS: a verified client certificate classifies the request (match.clientCert), over HTTP/1.1 and HTTP/2', async () => {
  const client = { cert: pki.client.cert, key: pki.client.key };
  const p0 = await served('partner');
  const o0 = await served('other');
  assert.equal((await httpsGet(`${urls[2]}/with-cert`, client)).status, 200);
  const session = h2Connect(urls[2]!, { ca: pki.ca, ...client });
  assert.equal((await h2Get(session, '/with-cert-h2')).status, 200);
  session.close();
  assert.equal(await served('partner'), p0 + 2);
  // No certificate, and a certificate from a CA other than clientCa: served, but not as partner.
  assert.equal((await httpsGet(`${urls[2]}/no-cert`)).status, 200);
  assert.equal((await httpsGet(`${urls[2]}/stranger`, { cert: pki.strangerClient.cert, key: pki.strangerClient.key })).status, 200);
  assert.equal(await served('partner'), p0 + 2);
  assert.equal(await served('other'), o0 + 2);
  await idle();
});

test('requireClientCert: handshakes without a verified certificate fail', async () => {
  await assert.rejects(httpsGet(`${urls[3]}/none`));
  await assert.rejects(httpsGet(`${urls[3]}/stranger`, { cert: pki.strangerClient.cert, key: pki.strangerClient.key }));
  assert.equal((await httpsGet(`${urls[3]}/ok`, { cert: pki.client.cert, key: pki.client.key })).status, 200);
  await idle();
});

test('reload: new handshakes get the new certificate, open connections stay; a bad pair is refused and the old kept', async () => {
  const p = port(urls[0]!);
  const before = await handshake(p, {});
  const session = h2Connect(urls[0]!, { ca: pki.ca });
  assert.equal((await h2Get(session, '/before')).status, 200);

  const renewed = await pki.issue('renewed', 'localhost', 'DNS:localhost,IP:127.0.0.1');
  await copyFile(renewed.certFile, liveCert);
  await copyFile(renewed.keyFile, liveKey);
  const ok = await fetch(`${sluice.admin}/reload`, { method: 'POST' });
  assert.equal(ok.status, 200, await ok.text());
  const after = await handshake(p, {});
  assert.notEqual(after.fingerprint256, before.fingerprint256);
  assert.equal(after.fingerprint256, (await handshake(p, {})).fingerprint256);
  // The HTTP/2 session opened before the reload keeps working.
  assert.equal((await h2Get(session, '/after')).status, 200);
  assert.equal(session.closed, false);

  // A key that does not belong to the certificate: 400 naming the files, the renewed certificate stays.
  await copyFile(pki.other.keyFile, liveKey);
  const bad = await fetch(`${sluice.admin}/reload`, { method: 'POST' });
  assert.equal(bad.status, 400);
  const text = await bad.text();
  assert.match(text, /live\.crt does not match private key .*live\.key/);
  assert.equal((await handshake(p, {})).fingerprint256, after.fingerprint256);
  // An unreadable file: also refused.
  await writeFile(liveKey, 'not a key');
  const bad2 = await fetch(`${sluice.admin}/reload`, { method: 'POST' });
  assert.equal(bad2.status, 400);
  assert.match(await bad2.text(), /live\.key is not an unencrypted PEM private key/);
  assert.equal((await h2Get(session, '/still')).status, 200);
  session.close();
  await copyFile(renewed.keyFile, liveKey);
  await idle();
});

test('start-up: a missing or mismatched certificate file is an error naming the file, and nothing listens', async () => {
  const missing = await writePolicy(`listen: { port: 0, tls: { cert: /nonexistent/site.crt, key: ${pki.server.keyFile} } }
upstreams: [{ name: a, targets: ["http://127.0.0.1:1"] }]
routes: [{ upstream: a }]
`);
  const r1 = await runCli(['serve', '--config', missing, '--port', '0', '--admin-port', '0']);
  assert.equal(r1.code, 1);
  assert.match(r1.stderr, /listen\.tls\.cert: cannot read \/nonexistent\/site\.crt/);
  const mismatched = await writePolicy(`listen: { port: 0, tls: { cert: ${pki.server.certFile}, key: ${pki.other.keyFile} } }
upstreams: [{ name: a, targets: ["http://127.0.0.1:1"] }]
routes: [{ upstream: a }]
`);
  const r2 = await runCli(['check', '--config', mismatched]);
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /server\.crt does not match private key .*other\.key/);
});
