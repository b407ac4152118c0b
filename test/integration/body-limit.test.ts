import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startSluice, simplePolicy, type RunningSluice } from '../helpers/sluice.js';
import { assertDrained } from '../helpers/invariants.js';

let backend: Backend;
let sluice: RunningSluice;

before(async () => {
  backend = await startBackend();
  sluice = await startSluice(`upstreams:
  - name: app
    targets: [${backend.url}]
routes:
  - match: { pathPrefix: /small }
    upstream: app
    maxBodySize: 1KiB
  - upstream: app
classes:
  - name: tiny
    match: { headers: { x-class: tiny } }
    maxBodySize: 100
  - name: rest
defaultClass: rest
limits: { maxBodySize: 64KiB }
`);
});

after(async () => {
  try {
    // The invariant: when traffic stops, every in-flight and queued count is zero.
    await assertDrained(sluice.admin);
  } finally {
    await sluice.stop();
  }
  await backend.close();
});

function post(path: string, size: number, chunked: boolean, extra: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...extra, ...(chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': size }) };
    const req = request(`${sluice.url}${path}`, { method: 'POST', headers }, (res) => {
      let b = '';
      res.setEncoding('utf8').on('data', (d: string) => (b += d)).on('end', () => resolve({ status: res.statusCode!, body: b }));
    });
    req.on('error', reject);
    const chunk = Buffer.alloc(8 * 1024, 99);
    let sent = 0;
    const pump = (): void => {
      while (sent < size) {
        const piece = chunk.subarray(0, Math.min(chunk.length, size - sent));
        sent += piece.length;
        if (!req.write(piece)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

test('a declared body over limits.maxBodySize gets 413 and never reaches the upstream', async () => {
  backend.reset();
  const r = await post('/declared', 128 * 1024, false).catch(() => ({ status: 0, body: '' }));
  assert.equal(r.status, 413);
  assert.match(r.body, /exceeds 65536/);
  assert.ok(!backend.hits.includes('/declared'));
});

test('a chunked body that grows past the limit gets 413', async () => {
  const r = await post('/count', 256 * 1024, true).catch(() => ({ status: 0, body: '' }));
  assert.ok(r.status === 413 || r.status === 0, `status ${r.status}`);
  if (r.status === 413) assert.match(r.body, /exceeds 65536 bytes/);
});

test('bodies under the limit pass', async () => {
  const r = await post('/count', 32 * 1024, true);
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.body).bytes, 32 * 1024);
});

test('routes and classes can set a smaller body limit than the global one', async () => {
  assert.equal((await post('/small/x', 2048, false)).status, 413);
  assert.equal((await post('/small/x', 512, false)).status, 200);
  assert.equal((await post('/count', 512, false, { 'x-class': 'tiny' })).status, 413);
  assert.equal((await post('/count', 512, false)).status, 200);
});
