/**
 * Limit parity between HTTP/1.1 and HTTP/2 (issue #10, item 7): limits.maxHeaderSize answers
 * 431 on both (HTTP/2 measured as RFC 9113 §6.5.2 counts a header list), maxUrlLength 414,
 * maxBodySize 413 (declared or streamed without a length).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as h2Connect, type ClientHttp2Session } from 'node:http2';
import { request } from 'node:http';
import { startSluice, simplePolicy, type RunningSluice } from '../helpers/sluice.js';
import { startRecorder, type Recorder } from '../helpers/recorder.js';
import { assertDrained } from '../helpers/invariants.js';

let rec: Recorder;
let sluice: RunningSluice;
let session: ClientHttp2Session;

before(async () => {
  rec = await startRecorder();
  sluice = await startSluice(simplePolicy(rec.url, 'limits: { maxHeaderSize: 16KiB, maxUrlLength: 256, maxBodySize: 1KiB }\n'));
  session = h2Connect(sluice.url);
});

after(async () => {
  session.close();
  await sluice.stop();
  await rec.close();
});

function h2(headers: Record<string, string>, body?: string | Buffer): Promise<{ status: number; reset?: number }> {
  return new Promise((resolve) => {
    const s = session.request(headers, { endStream: body === undefined });
    let status = 0;
    s.on('response', (h) => (status = Number(h[':status'])));
    s.resume();
    s.on('end', () => resolve({ status }));
    s.on('error', () => resolve({ status, reset: s.rstCode }));
    s.on('close', () => resolve({ status, reset: s.rstCode }));
    if (body !== undefined) s.end(body);
  });
}

function h1(path: string, headers: Record<string, string>, body?: string): Promise<number> {
  return new Promise((resolve) => {
    const r = request(`${sluice.url}${path}`, { method: body === undefined ? 'GET' : 'POST', headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    r.on('error', () => resolve(-1));
    r.end(body);
  });
}

test('a 50 KB header block: 431 on HTTP/1.1 and on HTTP/2, never forwarded', async () => {
  rec.requests.length = 0;
  const big = { 'x-big': 'a'.repeat(25_000), 'x-big2': 'b'.repeat(25_000) };
  assert.equal(await h1('/big-h1', big), 431);
  // 431 from sluice's own measure; once the client has acknowledged SETTINGS, Node's nghttp2 may
  // refuse the block itself with a stream error (ENHANCE_YOUR_CALM), which RFC 9113 §10.5.1 allows.
  const refused = (r: { status: number; reset?: number }): boolean => r.status === 431 || (r.status === 0 && (r.reset === 11 || r.reset === 7));
  const r = await h2({ ':path': '/big-h2', ...big });
  assert.ok(refused(r), JSON.stringify(r));
  // Many small fields count too (32 octets each, RFC 9113 §6.5.2).
  const many: Record<string, string> = {};
  for (let i = 0; i < 200; i++) many[`x-f${i}`] = 'v'.repeat(60);
  const m = await h2({ ':path': '/many-h2', ...many });
  assert.ok(refused(m), JSON.stringify(m));
  // On a fresh connection (first request before the SETTINGS acknowledgement): 431, not a pass.
  const fresh = h2Connect(sluice.url);
  try {
    const f = await new Promise<{ status: number; reset?: number }>((resolve) => {
      const s = fresh.request({ ':path': '/big-fresh', ...big });
      let status = 0;
      s.on('response', (h) => (status = Number(h[':status'])));
      s.resume();
      s.on('close', () => resolve({ status, reset: s.rstCode }));
      s.on('error', () => {});
    });
    assert.ok(refused(f), JSON.stringify(f));
  } finally {
    fresh.close();
  }
  assert.equal(rec.requests.length, 0);
  // Just under the limit passes on both.
  const fits = { 'x-fits': 'c'.repeat(12_000) };
  assert.equal(await h1('/fits-h1', fits), 200);
  assert.equal((await h2({ ':path': '/fits-h2', ...fits })).status, 200);
  await assertDrained(sluice.admin);
});

test('maxUrlLength: 414 on both protocols', async () => {
  const long = `/long?${'q'.repeat(400)}`;
  assert.equal(await h1(long, {}), 414);
  assert.equal((await h2({ ':path': long })).status, 414);
  await assertDrained(sluice.admin);
});

test('maxBodySize: 413 on both protocols, declared or streamed without a length', async () => {
  rec.requests.length = 0;
  const body = 'z'.repeat(4096);
  assert.equal(await h1('/body-h1', {}, body), 413);
  assert.equal((await h2({ ':path': '/body-h2', ':method': 'POST', 'content-length': String(body.length) }, body)).status, 413);
  const streamed = await h2({ ':path': '/body-h2-nolen', ':method': 'POST' }, body);
  assert.ok(streamed.status === 413 || streamed.reset !== undefined, JSON.stringify(streamed));
  assert.deepEqual(rec.requests.filter((r) => r.body.length > 1024), []);
  await assertDrained(sluice.admin);
});
