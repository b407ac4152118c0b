/** Clients that abort mid-upload or mid-download release their slot and the upstream exchange at once. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect, constants } from 'node:http2';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startSluice, simplePolicy, type RunningSluice } from '../helpers/sluice.js';
import { getJson, waitFor } from '../helpers/net.js';
import { assertDrained } from '../helpers/invariants.js';

let backend: Backend;
let sluice: RunningSluice;

before(async () => {
  backend = await startBackend();
  sluice = await startSluice(simplePolicy(backend.url, '', '    maxConcurrent: 4\n'));
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

async function released(what: string): Promise<void> {
  await waitFor(async () => (await getJson<{ inFlight: number }>(`${sluice.admin}/status`)).inFlight === 0, 3000, `${what}: proxy slot freed`);
  await waitFor(() => backend.inFlight === 0, 3000, `${what}: upstream exchange ended`);
  assert.equal((await fetch(`${sluice.url}/still-ok`)).status, 200);
  await assertDrained(sluice.admin);
}

test('abort mid-upload (HTTP/1.1)', async () => {
  await new Promise<void>((resolve) => {
    const req = request(`${sluice.url}/count`, { method: 'POST', headers: { 'content-length': 10 * 1024 * 1024 } });
    req.on('error', () => resolve());
    req.write(Buffer.alloc(1024 * 1024, 1));
    setTimeout(() => {
      req.destroy();
      resolve();
    }, 200);
  });
  await released('mid-upload');
});

test('abort mid-download (HTTP/1.1)', async () => {
  await new Promise<void>((resolve) => {
    const req = request(`${sluice.url}/bytes?n=${1024 * 1024 * 1024}`, (res) => {
      let n = 0;
      res.on('data', (d: Buffer) => {
        n += d.length;
        if (n > 1024 * 1024) {
          req.destroy();
          resolve();
        }
      });
    });
    req.on('error', () => resolve());
    req.end();
  });
  await released('mid-download');
});

test('stream reset mid-download (HTTP/2)', async () => {
  const session = connect(sluice.url);
  await new Promise<void>((resolve) => {
    const s = session.request({ ':path': `/bytes?n=${1024 * 1024 * 1024}` });
    let n = 0;
    s.on('data', (d: Buffer) => {
      n += d.length;
      if (n > 1024 * 1024) {
        s.close(constants.NGHTTP2_CANCEL);
        resolve();
      }
    });
    s.on('error', () => resolve());
  });
  await released('h2 reset');
  session.close();
});
