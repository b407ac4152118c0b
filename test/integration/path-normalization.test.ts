/**
 * Issue 16 item 1: routing, classification and the upstream see one path.
 * Raw sockets (HTTP/1.1, WebSocket) and a raw HTTP/2 client send the exact
 * bytes; the backend's raw req.url says what the upstream acted on.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { connect as h2connect } from 'node:http2';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startSluice, simplePolicy, runCli, type RunningSluice } from '../helpers/sluice.js';
import { getJson, waitFor } from '../helpers/net.js';

let backend: Backend;
let sluice: RunningSluice;
const rawUrls: string[] = [];

interface Status {
  inFlight: number;
  queued: number;
  classes: { name: string; served: number; inFlight: number; queued: number }[];
}

before(async () => {
  backend = await startBackend();
  backend.server.prependListener('request', (req) => rawUrls.push(req.url ?? ''));
  backend.server.prependListener('upgrade', (req) => rawUrls.push(req.url ?? ''));
  sluice = await startSluice(
    simplePolicy(
      backend.url,
      `classes:
  - name: login
    match: { pathPrefix: /login }
  - name: free
defaultClass: free
`,
    ),
  );
});

after(async () => {
  await sluice.stop();
  await backend.close();
});

async function served(): Promise<number> {
  const s = await getJson<Status>(`${sluice.admin}/status`);
  return s.classes.find((c) => c.name === 'login')!.served;
}

function rawH1(target: string, extra = ''): Promise<string> {
  const u = new URL(sluice.url);
  return new Promise((resolve, reject) => {
    const s = netConnect(Number(u.port), u.hostname, () => s.write(`GET ${target} HTTP/1.1\r\nHost: x\r\n${extra || 'Connection: close\r\n'}\r\n`));
    let data = '';
    s.setEncoding('latin1').on('data', (d: string) => {
      data += d;
      // A WebSocket stays open after its 101: the head is enough.
      if (extra !== '' && data.includes('\r\n\r\n')) s.destroy();
    });
    s.on('close', () => resolve(data));
    s.on('error', reject);
  });
}

async function rawH2(target: string): Promise<number> {
  const c = h2connect(sluice.url);
  try {
    return await new Promise<number>((resolve, reject) => {
      const r = c.request({ ':method': 'GET', ':path': target });
      r.on('response', (h) => resolve(Number(h[':status'])));
      r.on('error', reject);
      r.resume();
      r.end();
    });
  } finally {
    c.close();
  }
}

const WS = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
const SPELLINGS = ['/x/../login', '/./login', '/%2e%2e/login', '/%2E%2e/login', '/.%2e/login', '//login', '/login/.', '/a/b/../../login', '/../login', '/%6cogin', 'http://x/x/../login'];
const REFUSED = ['/x%2F..%2Flogin', '/x%2f..%2flogin', '/x%5C..%5Clogin', '/x\\..\\login', '/login%zz', '/login#frag', '/x/..;/login'];

for (const proto of ['HTTP/1.1', 'HTTP/2', 'WebSocket'] as const) {
  test(`${proto}: dot-segment and encoded spellings of /login are /login's class, and the upstream receives the normalised path`, async () => {
    for (const u of SPELLINGS) {
      if (proto === 'HTTP/2' && u.startsWith('http:')) continue; // :path has no absolute form
      const before = await served();
      rawUrls.length = 0;
      let status: number;
      if (proto === 'HTTP/2') status = await rawH2(u);
      else status = Number((await rawH1(u, proto === 'WebSocket' ? WS : '')).split(' ')[1]);
      assert.equal(status, proto === 'WebSocket' ? 101 : 200, `${proto} ${u}`);
      await waitFor(async () => (await served()) === before + 1, 5000, `${u} served as class login`);
      assert.equal(rawUrls.length, 1, `${u}: upstream requests ${JSON.stringify(rawUrls)}`);
      assert.match(rawUrls[0]!, /^\/login\/?$/, `${proto} ${u} reached the upstream as ${rawUrls[0]}`);
    }
  });

  test(`${proto}: encoded slashes, backslashes and malformed targets are refused with 400 before the upstream`, async () => {
    rawUrls.length = 0;
    for (const u of REFUSED) {
      let status: number;
      if (proto === 'HTTP/2') status = await rawH2(u);
      else {
        const head = await rawH1(u, proto === 'WebSocket' ? WS : '');
        status = Number(head.split(' ')[1]);
      }
      assert.equal(status, 400, `${proto} ${u}`);
    }
    assert.deepEqual(rawUrls, []);
  });
}

test('the query string is forwarded byte for byte', async () => {
  rawUrls.length = 0;
  const head = await rawH1('/x/../login?next=/a/../b&q=%2e');
  assert.match(head, /^HTTP\/1.1 200/);
  assert.deepEqual(rawUrls, ['/login?next=/a/../b&q=%2e']);
});

test('sluice explain shows the normalised path and its class, or the refusal', async () => {
  const ok = await runCli(['explain', '--config', sluice.configFile, '--path', '/x/../%6cogin', '--json']);
  assert.equal(ok.code, 0, ok.stderr);
  const j = JSON.parse(ok.stdout) as { class: string; request: { normalizedPath: string } };
  assert.deepEqual([j.class, j.request.normalizedPath], ['login', '/login']);
  const bad = await runCli(['explain', '--config', sluice.configFile, '--path', '/x%2f../login', '--json']);
  const b = JSON.parse(bad.stdout) as { class: string | null; rule: string };
  assert.equal(b.class, null);
  assert.match(b.rule, /^refused with 400: encoded slash/);
});

test('counts return to zero', async () => {
  await waitFor(async () => {
    const s = await getJson<Status>(`${sluice.admin}/status`);
    return s.inFlight === 0 && s.queued === 0 && s.classes.every((c) => c.inFlight === 0 && c.queued === 0);
  });
});
