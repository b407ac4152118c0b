/**
 * Slow clients do not hold the backend (issue #10): request bodies are read
 * before the request takes a slot, responses are read from the upstream at its
 * speed while the client drains a bounded buffer, and clients slower than
 * timeouts.minBodyRate beyond the buffers are cut.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { connect as h2connect, constants } from 'node:http2';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startSluice, simplePolicy, type RunningSluice } from '../helpers/sluice.js';
import { getJson, run, waitFor } from '../helpers/net.js';
import { assertDrained } from '../helpers/invariants.js';

let backend: Backend;
let sluice: RunningSluice;
let port: number;

before(async () => {
  backend = await startBackend();
  sluice = await startSluice(
    simplePolicy(
      backend.url,
      `timeouts: { minBodyRate: 1KiB/s, minBodyRateWindow: 2s, requestBodyIdle: 30s }
limits: { buffering: { request: 64KiB, response: 1MiB, budget: 128MiB } }
classes:
  - name: all
    queue: { size: 1000, timeout: 20s }
defaultClass: all
`,
      '    maxConcurrent: 8\n',
    ),
  );
  port = Number(new URL(sluice.url).port);
});

after(async () => {
  await sluice.stop();
  await backend.close();
});

interface Status {
  inFlight: number;
  queued: number;
}

function open(): Socket {
  const s = connect(port, '127.0.0.1');
  s.on('error', () => {});
  return s;
}

/** Resolves with what the socket received once it closes (or after limitMs). */
function received(s: Socket, limitMs: number): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    s.setEncoding('latin1').on('data', (d: string) => (data += d));
    const t = setTimeout(() => {
      s.destroy();
      resolve(data);
    }, limitMs);
    s.once('close', () => {
      clearTimeout(t);
      resolve(data);
    });
  });
}

test('256 trickling uploads hold no slot: buffered before the slot, then cut by the minimum rate', async () => {
  backend.reset();
  const socks = Array.from({ length: 256 }, () => open());
  const answers = socks.map((s) => received(s, 15_000));
  for (const s of socks) s.write('POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\nabcd');
  const drip = setInterval(() => {
    for (const s of socks) if (s.writable) s.write('x');
  }, 500);
  try {
    await new Promise((r) => setTimeout(r, 800));
    const st = await getJson<Status>(`${sluice.admin}/status`);
    assert.equal(st.inFlight, 0, 'no trickling upload holds a slot');
    // Everyone else is served meanwhile.
    const t0 = Date.now();
    const ok = await Promise.all(Array.from({ length: 8 }, (_, i) => fetch(`${sluice.url}/other/${i}`).then((r) => r.status)));
    assert.deepEqual(ok, Array(8).fill(200));
    assert.ok(Date.now() - t0 < 8000, `others served in ${Date.now() - t0} ms`);
    const out = await Promise.all(answers);
    const cut = out.filter((d) => /^HTTP\/1\.1 408 /.test(d) && /too slow/.test(d)).length;
    assert.equal(cut, 256, `408 for every trickler (got ${cut})`);
  } finally {
    clearInterval(drip);
    for (const s of socks) s.destroy();
  }
  assert.ok(!backend.hits.includes('/count'), 'no trickled body reached the upstream');
  await assertDrained(sluice.admin);
});

test('an upload longer than the buffer takes a slot once buffered, and is cut when it trickles', async () => {
  const s = open();
  const answer = received(s, 15_000);
  s.write(`POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: ${1024 * 1024}\r\n\r\n`);
  s.write(Buffer.alloc(100 * 1024, 98));
  const drip = setInterval(() => s.writable && s.write('y'), 500);
  try {
    await waitFor(async () => (await getJson<Status>(`${sluice.admin}/status`)).inFlight === 1, 5000, 'streamed body takes a slot');
    const data = await answer;
    assert.match(data, /^HTTP\/1\.1 408 /);
  } finally {
    clearInterval(drip);
    s.destroy();
  }
  await assertDrained(sluice.admin);
});

test('clients that leave while their body is being buffered free the buffer (HTTP/1.1 close, HTTP/2 reset)', async () => {
  backend.reset();
  const s = open();
  s.write(`POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 50000\r\n\r\n${'a'.repeat(1000)}`);
  const session = h2connect(sluice.url);
  session.on('error', () => {});
  const st = session.request({ ':method': 'POST', ':path': '/count', 'content-length': '50000' });
  st.on('error', () => {});
  st.write(Buffer.alloc(1000));
  await waitFor(async () => (await getJson<{ bufferedBytes: number }>(`${sluice.admin}/status`)).bufferedBytes === 100_000, 5000, 'both bodies buffered');
  s.destroy();
  st.close(constants.NGHTTP2_CANCEL);
  await assertDrained(sluice.admin);
  session.close();
  assert.deepEqual(backend.hits, [], 'nothing reached the upstream');
});

test('a small body is forwarded whole, with the exact bytes received', async () => {
  const body = Buffer.alloc(50_000, 7);
  const r = await fetch(`${sluice.url}/count`, { method: 'POST', body });
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { bytes: 50_000 });
  const chunked = await fetch(`${sluice.url}/count`, {
    method: 'POST',
    body: new ReadableStream({
      start(c) {
        c.enqueue(new Uint8Array(30_000));
        c.enqueue(new Uint8Array(70_000));
        c.close();
      },
    }),
    duplex: 'half',
  } as RequestInit);
  assert.deepEqual(await chunked.json(), { bytes: 100_000 });
  await assertDrained(sluice.admin);
});

test('40 readers that never read 1 MB responses do not lock others out (maxConcurrent 8)', async () => {
  const socks: Socket[] = [];
  for (let i = 0; i < 40; i++) {
    const s = open();
    s.write(`GET /bytes?n=1000000&r=${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
    s.pause();
    socks.push(s);
  }
  try {
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    const statuses = await Promise.all(Array.from({ length: 8 }, (_, i) => fetch(`${sluice.url}/fresh/${i}`).then((r) => r.status)));
    assert.deepEqual(statuses, Array(8).fill(200));
    assert.ok(Date.now() - t0 < 8000, `others served in ${Date.now() - t0} ms`);
    // The upstream finished every response; the slots came back while the readers still hold theirs.
    await waitFor(async () => (await getJson<Status>(`${sluice.admin}/status`)).inFlight === 0, 5000, 'slots freed');
  } finally {
    for (const s of socks) s.destroy();
  }
  await assertDrained(sluice.admin);
});

test('beyond the buffers, a reader slower than minBodyRate is cut and its slot freed', async () => {
  const n = 256 * 1024 * 1024;
  const s = open();
  s.write(`GET /bytes?n=${n} HTTP/1.1\r\nHost: x\r\n\r\n`);
  s.pause();
  try {
    await waitFor(async () => (await getJson<Status>(`${sluice.admin}/status`)).inFlight === 1, 5000, 'the large response holds a slot');
    const t0 = Date.now();
    await waitFor(async () => (await getJson<Status>(`${sluice.admin}/status`)).inFlight === 0, 15_000, 'the stalled reader is cut');
    assert.ok(Date.now() - t0 >= 1000, 'not before the rate window');
    // What the client gets is a cut connection, not a complete response.
    let got = 0;
    s.on('data', (d: Buffer) => (got += d.length));
    s.resume();
    await new Promise<void>((resolve) => s.once('close', () => resolve()));
    assert.ok(got < n, `received ${got} of ${n} bytes`);
  } finally {
    s.destroy();
  }
  await assertDrained(sluice.admin);
});

test('HTTP/2: a stream whose reader stops (no WINDOW_UPDATE) is reset once below minBodyRate, its slot freed', async () => {
  const session = h2connect(sluice.url);
  session.on('error', () => {});
  const st = session.request({ ':path': `/bytes?n=${256 * 1024 * 1024}` });
  st.on('error', () => {});
  await new Promise<void>((resolve) => st.once('response', () => resolve()));
  st.pause();
  try {
    await waitFor(async () => (await getJson<Status>(`${sluice.admin}/status`)).inFlight === 1, 5000, 'the download holds a slot');
    const code = await new Promise<number>((resolve) => {
      st.once('close', () => resolve(st.rstCode ?? -1));
    });
    assert.equal(code, constants.NGHTTP2_INTERNAL_ERROR, 'cut as a stream error');
  } finally {
    session.destroy();
  }
  await assertDrained(sluice.admin);
});

test('slowhttptest -X (slow read) against 1 MB responses leaves service for others', async () => {
  const t = run('/usr/bin/slowhttptest', ['-X', '-c', '40', '-r', '40', '-w', '512', '-y', '1024', '-n', '5', '-z', '32', '-k', '1', '-l', '8', '-u', `${sluice.url}/bytes?n=1000000`, '-p', '3']);
  await new Promise((r) => setTimeout(r, 2500));
  const t0 = Date.now();
  const statuses = await Promise.all(Array.from({ length: 8 }, (_, i) => fetch(`${sluice.url}/during-slowread/${i}`).then((r) => r.status)));
  assert.deepEqual(statuses, Array(8).fill(200));
  assert.ok(Date.now() - t0 < 8000, `others served in ${Date.now() - t0} ms`);
  const st = await getJson<{ upstreams: { inFlight: number }[] }>(`${sluice.admin}/status`);
  assert.ok(st.upstreams[0]!.inFlight < 8, `slots held by slow readers: ${st.upstreams[0]!.inFlight}`);
  const r = await t;
  assert.notEqual(r.code, -1, `slowhttptest did not run: ${r.stderr}`);
  assert.match(r.stdout + r.stderr, /slow read|Slow Read|Test parameters/i);
  await assertDrained(sluice.admin, 10_000);
});

test('a shaped download that fits the buffer frees its slot at once while shaping still paces the client', async () => {
  const s = await startSluice(
    simplePolicy(
      backend.url,
      `classes:
  - name: shaped
    bandwidth: { download: 256KiB/s }
defaultClass: shaped
`,
      '    maxConcurrent: 1\n',
    ),
  );
  try {
    const t0 = Date.now();
    const download = fetch(`${s.url}/bytes?n=${768 * 1024}`).then(async (r) => (await r.arrayBuffer()).byteLength);
    await new Promise((r) => setTimeout(r, 800));
    const mid = await getJson<Status>(`${s.admin}/status`);
    assert.equal(mid.inFlight, 0, 'the upstream is done: its slot is free while the client is still paced');
    assert.equal((await fetch(`${s.url}/meanwhile`)).status, 200, 'the one slot serves another request meanwhile');
    assert.equal(await download, 768 * 1024);
    const ms = Date.now() - t0;
    assert.ok(ms >= 2000, `768 KiB at 256 KiB/s took ${ms} ms (shaping still applies)`);
    await assertDrained(s.admin);
  } finally {
    await s.stop();
  }
});
