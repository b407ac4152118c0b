/**
 * Request-head deadlines that cannot be dodged (issue #10, item 3): `timeouts.requestHeaders`
 * counts from accept, so connections that send nothing, only part of the HTTP/2 preface,
 * a preface but no stream, or a head dripped slowly, are all closed, and their file
 * descriptors come back. Also slowhttptest -H (slowloris) from Debian.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { readdir, readFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startSluice, simplePolicy, type RunningSluice } from '../helpers/sluice.js';
import { assertDrained } from '../helpers/invariants.js';
import { run, waitFor } from '../helpers/net.js';

const DEADLINE_MS = 1000;
const MARGIN_MS = 2500;
let backend: Backend;
let sluice: RunningSluice;
let port: number;

before(async () => {
  backend = await startBackend();
  sluice = await startSluice(simplePolicy(backend.url, 'timeouts: { requestHeaders: 1s, keepAlive: 5s }\n'));
  port = Number(new URL(sluice.url).port);
});

after(async () => {
  await sluice.stop();
  await backend.close();
});

const fds = async (): Promise<number> => (await readdir(`/proc/${sluice.proc.pid}/fd`)).length;

const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
const EMPTY_SETTINGS = Buffer.from('000000040000000000', 'hex');

/** Opens a connection, sends `first` (if any), and resolves with the ms from connect until the server closed it. */
function openIdle(first: Buffer | string | undefined, limitMs: number): { closed: Promise<number>; socket: Socket } {
  const s = connect(port, '127.0.0.1');
  const closed = new Promise<number>((resolve) => {
    let t0 = Date.now();
    s.once('connect', () => {
      t0 = Date.now();
      if (first !== undefined) s.write(first);
    });
    s.on('data', () => {});
    s.on('error', () => {});
    s.once('close', () => resolve(Date.now() - t0));
    setTimeout(() => {
      s.destroy();
      resolve(Infinity);
    }, limitMs);
  });
  return { closed, socket: s };
}

test('silent, partial-preface, preface-only and half-head connections are all closed within requestHeaders from accept; fds return', async () => {
  const base = await fds();
  const kinds: [string, Buffer | string | undefined][] = [
    ['silent', undefined],
    ['partial HTTP/2 preface', 'PRI * HTTP/2.0\r\n'],
    ['preface and SETTINGS, no stream', Buffer.concat([Buffer.from(PREFACE), EMPTY_SETTINGS])],
    ['half an HTTP/1.1 head', 'GET / HTTP/1.1\r\nHost: x\r\n'],
    ['one byte', 'G'],
  ];
  const per = 60;
  const opened = kinds.flatMap(([kind, first]) => Array.from({ length: per }, () => ({ kind, ...openIdle(first, DEADLINE_MS + MARGIN_MS + 3000) })));
  await waitFor(async () => (await fds()) >= base + opened.length * 0.9, 5000, 'the proxy to accept the connections');
  const times = await Promise.all(opened.map((o) => o.closed.then((ms) => ({ kind: o.kind, ms }))));
  for (const [kind] of kinds) {
    const worst = Math.max(...times.filter((t) => t.kind === kind).map((t) => t.ms));
    assert.ok(worst <= DEADLINE_MS + MARGIN_MS, `${kind}: a connection lived ${worst} ms (deadline ${DEADLINE_MS} ms)`);
    const best = Math.min(...times.filter((t) => t.kind === kind).map((t) => t.ms));
    assert.ok(best >= DEADLINE_MS - 100, `${kind}: closed after ${best} ms, before the deadline`);
  }
  await waitFor(async () => (await fds()) <= base + 2, 5000, `fds to return to ${base}`);
  await assertDrained(sluice.admin);
  // The proxy still serves.
  const r = await fetch(`${sluice.url}/after-idle`);
  assert.equal(r.status, 200);
  await r.text();
});

test('the HTTP/2 preface dripped a byte at a time cannot keep a connection open', async () => {
  const { closed, socket } = openIdle(undefined, DEADLINE_MS + MARGIN_MS + 3000);
  let i = 0;
  const t = setInterval(() => {
    if (i < PREFACE.length && socket.writable) socket.write(PREFACE[i++]!);
  }, 150);
  const ms = await closed;
  clearInterval(t);
  assert.ok(ms <= DEADLINE_MS + MARGIN_MS, `lived ${ms} ms`);
});

test('an HTTP/2 session that opens a stream in time is not cut by the head deadline', async () => {
  const { connect: h2connect } = await import('node:http2');
  const session = h2connect(sluice.url);
  try {
    await new Promise<void>((resolve, reject) => {
      const s = session.request({ ':path': '/first' });
      s.resume();
      s.on('end', resolve);
      s.on('error', reject);
    });
    await new Promise((r) => setTimeout(r, DEADLINE_MS + 500));
    const status = await new Promise<number>((resolve, reject) => {
      const s = session.request({ ':path': '/later' });
      s.on('response', (h) => resolve(Number(h[':status'])));
      s.resume();
      s.on('error', reject);
    });
    assert.equal(status, 200);
  } finally {
    session.close();
  }
  await assertDrained(sluice.admin);
});

test('slowhttptest -H (slowloris): connections are closed by the proxy and the service stays available', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-slowhttptest-'));
  const out = join(dir, 'report');
  const base = await fds();
  const started = Date.now();
  const r = await run('slowhttptest', ['-H', '-c', '150', '-r', '75', '-i', '1', '-s', '8192', '-l', '20', '-p', '3', '-g', '-o', out, '-u', `${sluice.url}/slow`]);
  const took = Date.now() - started;
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const text = (r.stdout + r.stderr).replace(/\x1b\[[0-9;]*m/g, '');
  // The proxy closed every slow connection long before the 20 s test length ran out.
  assert.match(text, /Exit status:\s*No open connections left/, text.slice(-600));
  assert.ok(took < 15_000, `slowhttptest ran ${took} ms`);
  const rows = (await readFile(`${out}.csv`, 'utf8'))
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split(',').map(Number));
  assert.ok(rows.length >= 2, 'slowhttptest reported its progress');
  // Columns: Seconds, Closed, Pending, Connected, Service Available (plotted as the connection count when
  // the probe connection was served, 0 when it was not). The probe is always served.
  for (const row of rows) assert.ok(row[4]! > 0, `service unavailable at second ${row[0]}`);
  assert.ok(Math.max(...rows.map((row) => row[1]!)) > 0, 'the proxy closed connections');
  // Only slowhttptest's availability probes (one complete request per second) reach the upstream.
  const forwarded = backend.hits.filter((h) => h === '/slow').length;
  assert.ok(forwarded <= rows.length + 2, `${forwarded} slow heads reached the upstream`);
  await waitFor(async () => (await fds()) <= base + 2, 5000, `fds to return to ${base}`);
  await assertDrained(sluice.admin);
});
