/**
 * The slot ledger: every request ends exactly once and gives back what it held,
 * whatever order its events arrive in (issue #10). Each test ends with the
 * in-flight and queued counts back at zero (assertDrained).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as h2connect, constants } from 'node:http2';
import { SignJWT } from 'jose';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startSluice, simplePolicy, type RunningSluice } from '../helpers/sluice.js';
import { getJson, waitFor, run } from '../helpers/net.js';
import { assertDrained } from '../helpers/invariants.js';

let backend: Backend;
let sluice: RunningSluice;
let port: number;

before(async () => {
  backend = await startBackend();
  sluice = await startSluice(simplePolicy(backend.url, 'classes:\n  - name: free\n    queue: { size: 100, timeout: 20s }\ndefaultClass: free\n', '    maxConcurrent: 4\n'));
  port = Number(new URL(sluice.url).port);
});

after(async () => {
  await sluice.stop();
  await backend.close();
});

// The exact bytes of issue #10: client preface, empty SETTINGS, HEADERS (stream 1, GET /, END_STREAM), RST_STREAM (stream 1, CANCEL).
const RESET_AFTER_HEADERS = Buffer.from(
  '505249202a20485454502f322e300d0a0d0a534d0d0a0d0a' + '000000040000000000' + '000006010500000001828684010178' + '00000403000000000100000008',
  'hex',
);

function rawWrite(bytes: Buffer, keepMs = 100): Promise<void> {
  return new Promise((resolve) => {
    const s = netConnect(port, '127.0.0.1', () => s.write(bytes));
    s.on('error', () => {});
    s.on('data', () => {});
    setTimeout(() => {
      s.destroy();
      resolve();
    }, keepMs);
  });
}

test('HTTP/2 stream reset right after its HEADERS: no slot leaks, nothing goes upstream', async () => {
  backend.reset();
  for (let i = 0; i < 10; i++) await rawWrite(RESET_AFTER_HEADERS); // > maxConcurrent (4)
  await assertDrained(sluice.admin);
  const r = await fetch(`${sluice.url}/after-resets`);
  assert.equal(r.status, 200);
  await r.text();
  assert.deepEqual(backend.hits, ['/after-resets'], 'the cancelled requests never reached the upstream');
  await assertDrained(sluice.admin);
});

test('the same reset, many streams on one connection at once (python3-h2)', async () => {
  backend.reset();
  const script = `
import socket, sys, h2.connection, h2.config, h2.errors
s = socket.create_connection(('127.0.0.1', ${port}))
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
c.initiate_connection()
for i in range(20):
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, [(':method', 'GET'), (':path', '/h2reset'), (':scheme', 'http'), (':authority', 'x')], end_stream=True)
    c.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
s.sendall(c.data_to_send())
s.settimeout(1.0)
try:
    while s.recv(65535): pass
except Exception: pass
sid = c.get_next_available_stream_id()
c.send_headers(sid, [(':method', 'GET'), (':path', '/h2ok'), (':scheme', 'http'), (':authority', 'x')], end_stream=True)
s.sendall(c.data_to_send())
s.settimeout(5.0)
status = None
while status is None:
    data = s.recv(65535)
    if not data: break
    for ev in c.receive_data(data):
        if hasattr(ev, 'headers') and ev.stream_id == sid:
            status = dict(ev.headers).get(b':status')
print(status.decode() if status else 'none')
`;
  const r = await run('/usr/bin/python3', ['-c', script]);
  assert.equal(r.stdout.trim(), '200', `python h2: ${r.stdout} ${r.stderr}`);
  await assertDrained(sluice.admin);
  assert.ok(backend.hits.includes('/h2ok'));
  assert.ok(backend.hits.filter((h) => h === '/h2reset').length <= 4, `reset streams forwarded: ${backend.hits.length}`);
});

test('rapid reset flood on one connection (CVE-2023-44487): others are served, memory stays bounded', async (t) => {
  const rss0 = await sluice.rss();
  const frames: Buffer[] = [Buffer.from('505249202a20485454502f322e300d0a0d0a534d0d0a0d0a000000040000000000', 'hex')];
  for (let i = 0; i < 20_000; i++) {
    const id = 1 + 2 * i;
    const h = Buffer.from('000006010500000000828684010178', 'hex');
    h.writeUInt32BE(id, 5);
    const rst = Buffer.from('00000403000000000000000008', 'hex');
    rst.writeUInt32BE(id, 5);
    frames.push(h, rst);
  }
  const flood = Buffer.concat(frames);
  const floods = [rawWrite(flood, 1500), rawWrite(flood, 1500)];
  const others = await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      fetch(`${sluice.url}/other/${i}`).then(
        async (r) => (await r.text(), r.status),
        () => 0,
      ),
    ),
  );
  await Promise.all(floods);
  assert.deepEqual(others, Array(8).fill(200));
  await assertDrained(sluice.admin);
  const rss1 = await sluice.rss();
  t.diagnostic(`RSS before ${Math.round(rss0 / 1048576)} MiB, after two floods of 20,000 reset streams ${Math.round(rss1 / 1048576)} MiB`);
  assert.ok(rss1 - rss0 < 150 * 1024 * 1024, `RSS grew ${Math.round((rss1 - rss0) / 1048576)} MiB`);
  assert.equal((await fetch(`${sluice.url}/after-flood`)).status, 200);
  await assertDrained(sluice.admin);
});

test('HTTP/2 resets mid-queue, mid-forward and after the response headers all free their slot', async () => {
  const session = h2connect(sluice.url);
  session.on('error', () => {});
  // Hold all 4 slots, then queue one more and reset it.
  const holders = Array.from({ length: 4 }, (_, i) => session.request({ ':path': `/hold/${i}?delay=1500` }));
  for (const h of holders) h.on('error', () => {}).resume();
  await waitFor(async () => (await getJson<{ inFlight: number }>(`${sluice.admin}/status`)).inFlight === 4, 5000, 'slots held');
  const queued = session.request({ ':path': '/queued' });
  queued.on('error', () => {});
  await waitFor(async () => (await getJson<{ queued: number }>(`${sluice.admin}/status`)).queued === 1, 5000, 'one queued');
  queued.close(constants.NGHTTP2_CANCEL);
  await waitFor(async () => (await getJson<{ queued: number }>(`${sluice.admin}/status`)).queued === 0, 3000, 'queue left');
  // Mid-forward: reset while the upstream is still thinking.
  for (const h of holders) h.close(constants.NGHTTP2_CANCEL);
  await assertDrained(sluice.admin);
  await waitFor(() => backend.inFlight === 0, 3000, 'upstream exchanges ended');
  // After the response headers, mid-body.
  const big = session.request({ ':path': `/bytes?n=${64 * 1024 * 1024}` });
  big.on('error', () => {});
  await new Promise<void>((resolve) => big.once('response', () => resolve()));
  big.close(constants.NGHTTP2_CANCEL);
  await assertDrained(sluice.admin);
  assert.ok(!backend.hits.includes('/queued'), 'the request reset in the queue never reached the upstream');
  session.close();
});

test('a client that pipelines 3 large GETs and disconnects frees every slot at once', async () => {
  const s: Socket = netConnect(port, '127.0.0.1');
  s.on('error', () => {});
  const n = 64 * 1024 * 1024;
  s.write(`GET /bytes?n=${n} HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(3));
  await new Promise<void>((resolve) => s.once('data', () => resolve()));
  await waitFor(async () => (await getJson<{ inFlight: number }>(`${sluice.admin}/status`)).inFlight >= 2, 5000, 'pipelined requests forwarded');
  const t0 = Date.now();
  s.destroy();
  // "At once": well before any timeout (the bug held two slots for 60 s).
  await assertDrained(sluice.admin, 5000);
  assert.ok(Date.now() - t0 < 5000, `freed after ${Date.now() - t0} ms`);
  await waitFor(() => backend.inFlight === 0, 3000, 'upstream exchanges ended');
});

test('rateLimit key jwt:org.id walks nested claims: two tenants get two buckets', async () => {
  const secret = 'a-test-secret-of-enough-length-123';
  const b = await startBackend();
  const s = await startSluice(
    simplePolicy(
      b.url,
      `identity: { jwt: { secret: ${secret} } }
classes:
  - name: tenants
    rateLimit: { rate: 2, per: 1m, burst: 2, key: "jwt:org.id" }
defaultClass: tenants
`,
    ),
  );
  try {
    const key = new TextEncoder().encode(secret);
    const token = (org: string): Promise<string> => new SignJWT({ org: { id: org } }).setProtectedHeader({ alg: 'HS256' }).sign(key);
    const get = async (t: string): Promise<number> => {
      const r = await fetch(`${s.url}/t`, { headers: { authorization: `Bearer ${t}` } });
      await r.text();
      return r.status;
    };
    const a = await token('acme');
    const z = await token('zenith');
    assert.equal(await get(a), 200);
    assert.equal(await get(a), 200);
    assert.equal(await get(z), 200, 'a second tenant has its own bucket');
    assert.equal(await get(a), 429);
    assert.equal(await get(z), 200);
    assert.equal(await get(z), 429);
    await assertDrained(s.admin);
  } finally {
    await s.stop();
    await b.close();
  }
});

test('shutdown answers requests held by a rate limit (onLimit: queue) with 503', async () => {
  const b = await startBackend();
  const s = await startSluice(
    simplePolicy(
      b.url,
      `shutdown: { grace: 300ms }
classes:
  - name: slow
    queue: { size: 10, timeout: 30s }
    rateLimit: { rate: 1, per: 20s, burst: 1, onLimit: queue, key: class }
defaultClass: slow
`,
    ),
  );
  try {
    assert.equal((await fetch(`${s.url}/first`)).status, 200);
    const held = fetch(`${s.url}/held`).then(
      async (r) => (await r.text(), r.status),
      () => 0,
    );
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    const code = await s.stop('SIGTERM');
    assert.equal(code, 0);
    assert.equal(await held, 503);
    assert.ok(Date.now() - t0 < 5000, `stopped after ${Date.now() - t0} ms`);
    assert.ok(!b.hits.includes('/held'));
  } finally {
    await b.close();
  }
});

test('one request, one policy generation: peer trust comes from the policy the request arrived under', async () => {
  // Arrives under gen1 (127.0.0.1 is a trusted proxy: its X-Forwarded-For chain is kept), waits in
  // the queue while gen2 (no trusted proxies) lands, and is forwarded under gen1's rules all the same.
  const b = await startBackend();
  const policy = (trusted: boolean): string =>
    simplePolicy(
      b.url,
      `${trusted ? 'trustedProxies: [127.0.0.1]\n' : ''}classes:\n  - name: c\n    queue: { size: 10, timeout: 10s }\ndefaultClass: c\n`,
      '    maxConcurrent: 1\n',
    );
  const s = await startSluice(policy(true));
  try {
    const holder = fetch(`${s.url}/hold?delay=800`).then((r) => r.text());
    await waitFor(async () => (await getJson<{ inFlight: number }>(`${s.admin}/status`)).inFlight === 1, 3000, 'slot held');
    const queued = fetch(`${s.url}/queued`, { headers: { 'x-forwarded-for': '203.0.113.7' } }).then(
      (r) => r.json() as Promise<{ headers: Record<string, string> }>,
    );
    await waitFor(async () => (await getJson<{ queued: number }>(`${s.admin}/status`)).queued === 1, 3000, 'queued');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(s.configFile, policy(false));
    assert.equal((await fetch(`${s.admin}/reload`, { method: 'POST' })).status, 200);
    await holder;
    const seen = await queued;
    assert.equal(seen.headers['x-forwarded-for'], '203.0.113.7, 127.0.0.1', 'gen1 trusted the peer; the request keeps gen1');
    // A request arriving now is under gen2: the forged chain is replaced.
    const now = (await (await fetch(`${s.url}/later`, { headers: { 'x-forwarded-for': '203.0.113.7' } })).json()) as {
      headers: Record<string, string>;
    };
    assert.equal(now.headers['x-forwarded-for'], '127.0.0.1');
    await assertDrained(s.admin);
  } finally {
    await s.stop();
    await b.close();
  }
});
