/**
 * Hostile clients at every moment: a seeded mix of HTTP/1.1, HTTP/2 and
 * WebSocket clients that reset, disconnect, pipeline, trickle or stall at
 * random points of their exchange, against an upstream with few slots, a rate
 * limit that queues, and small buffers. Afterwards nothing may be held: every
 * in-flight and queued count and every buffer back to zero, and the proxy
 * still serves.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { connect as h2connect, constants, type ClientHttp2Session } from 'node:http2';
import WebSocket from 'ws';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startSluice, simplePolicy, type RunningSluice } from '../helpers/sluice.js';
import { assertDrained } from '../helpers/invariants.js';

let backend: Backend;
let sluice: RunningSluice;
let port: number;

before(async () => {
  backend = await startBackend();
  sluice = await startSluice(
    simplePolicy(
      backend.url,
      `timeouts: { minBodyRate: 1KiB/s, minBodyRateWindow: 1s, requestBodyIdle: 2s }
limits: { buffering: { request: 16KiB, response: 64KiB, budget: 1MiB } }
classes:
  - name: limited
    match: { pathPrefix: /rl }
    rateLimit: { rate: 20, per: 1s, burst: 2, onLimit: queue, key: class }
    queue: { size: 50, timeout: 3s }
  - name: rest
    queue: { size: 200, timeout: 3s }
defaultClass: rest
`,
      '    maxConcurrent: 3\n    timeout: 2s\n',
    ),
  );
  port = Number(new URL(sluice.url).port);
});

after(async () => {
  await sluice.stop();
  await backend.close();
});

/** mulberry32: a small seeded PRNG, so a failing mix can be replayed. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PATHS = ['/x?delay=50', '/rl/a', '/bytes?n=300000', '/bytes?n=20000', '/reset-mid', '/hang', '/count', '/stall'];

function h1(rnd: () => number): Promise<void> {
  return new Promise((resolve) => {
    const s = netConnect(port, '127.0.0.1');
    s.on('error', () => {});
    const path = PATHS[Math.floor(rnd() * PATHS.length)]!;
    const kind = Math.floor(rnd() * 4);
    if (kind === 0) s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(1 + Math.floor(rnd() * 3)));
    else if (kind === 1) s.write(`POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 50000\r\n\r\n${'a'.repeat(Math.floor(rnd() * 30000))}`);
    else if (kind === 2) s.write(`POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n`);
    else {
      s.write(`GET /bytes?n=2000000 HTTP/1.1\r\nHost: x\r\n\r\n`);
      s.pause(); // stalled reader
    }
    if (kind !== 3) s.resume();
    setTimeout(() => {
      s.destroy();
      resolve();
    }, Math.floor(rnd() * 300));
  });
}

function h2(session: ClientHttp2Session, rnd: () => number): Promise<void> {
  return new Promise((resolve) => {
    const path = PATHS[Math.floor(rnd() * PATHS.length)]!;
    const post = rnd() < 0.3;
    const st = session.request({ ':path': path, ':method': post ? 'POST' : 'GET' }, { endStream: !post });
    st.on('error', () => {});
    st.resume();
    if (post) st.write(Buffer.alloc(Math.floor(rnd() * 40000)));
    const when = Math.floor(rnd() * 300);
    const t = setTimeout(() => {
      if (!st.closed) st.close(rnd() < 0.5 ? constants.NGHTTP2_CANCEL : constants.NGHTTP2_INTERNAL_ERROR);
      resolve();
    }, when);
    st.on('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

function ws(rnd: () => number): Promise<void> {
  return new Promise((resolve) => {
    const w = new WebSocket(`ws://127.0.0.1:${port}/${rnd() < 0.5 ? 'ws' : 'rl/ws'}`);
    w.on('error', () => {});
    w.on('unexpected-response', (_q, r) => r.resume());
    setTimeout(() => {
      w.terminate();
      resolve();
    }, Math.floor(rnd() * 300));
  });
}

test('a seeded storm of hostile clients leaves nothing held', async (t) => {
  const seed = Number(process.env.CHAOS_SEED ?? 1234);
  t.diagnostic(`seed ${seed} (CHAOS_SEED replays it)`);
  const rnd = prng(seed);
  const sessions = Array.from({ length: 3 }, () => {
    const s = h2connect(sluice.url);
    s.on('error', () => {});
    return s;
  });
  const work: Promise<void>[] = [];
  for (let i = 0; i < 300; i++) {
    const r = rnd();
    const session = sessions[i % sessions.length]!;
    if (r < 0.45) work.push(h1(rnd));
    else if (r < 0.9 && !session.destroyed && !session.closed) work.push(h2(session, rnd));
    else work.push(ws(rnd));
    if (i % 20 === 0) await new Promise((res) => setTimeout(res, 20));
  }
  await Promise.all(work);
  for (const s of sessions) s.destroy();
  try {
    await assertDrained(sluice.admin, 15_000);
  } catch (err) {
    t.diagnostic(`proxy stderr: ${sluice.stderr().slice(-3000)}`);
    throw err;
  }
  const r = await fetch(`${sluice.url}/after-storm`);
  assert.equal(r.status, 200);
  await r.text();
  await assertDrained(sluice.admin);
});
