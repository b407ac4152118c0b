/** Malformed and hostile HTTP/1.1 over a raw socket: answered 400/431, never forwarded, proxy unharmed. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startSluice, simplePolicy, type RunningSluice } from '../helpers/sluice.js';
import { assertDrained } from '../helpers/invariants.js';
import { rawExchange, statusOf } from '../helpers/net.js';

let backend: Backend;
let sluice: RunningSluice;
let port: number;

before(async () => {
  backend = await startBackend();
  sluice = await startSluice(simplePolicy(backend.url));
  port = Number(new URL(sluice.url).port);
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

/** Sends raw bytes and returns what came back before the server closed (or 2 s passed). */
const raw = (bytes: string | Buffer): Promise<string> => rawExchange(port, bytes);

const cases: [string, string, number][] = [
  ['bad request line', 'GARBAGE\r\n\r\n', 400],
  ['bad method token', 'G(T / HTTP/1.1\r\nHost: x\r\n\r\n', 400],
  ['bad HTTP version', 'GET / HTTP/9.9\r\nHost: x\r\n\r\n', 400],
  ['space before colon', 'GET /smuggle1 HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello', 400],
  ['CL and TE together (smuggling)', 'POST /smuggle2 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n', 400],
  ['two different Content-Length', 'POST /smuggle3 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 7\r\n\r\nabcdefg', 400],
  ['obfuscated Transfer-Encoding', 'POST /smuggle4 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n', 400],
  ['bare LF in header', 'GET /smuggle5 HTTP/1.1\r\nHost: x\r\nX: a\nb\r\n\r\n', 400],
  ['huge header', `GET /huge HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`, 431],
];

for (const [name, bytes, want] of cases) {
  test(`${name}: ${want} and never reaches the upstream`, async () => {
    backend.reset();
    const resp = await raw(bytes);
    assert.equal(statusOf(resp), want, JSON.stringify(resp.slice(0, 200)));
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(backend.hits, [], `forwarded: ${backend.hits}`);
  });
}

test('random bytes after a valid request line never crash the proxy', async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 200 }), async (junk) => {
      await raw(Buffer.concat([Buffer.from('GET /fuzz HTTP/1.1\r\n'), Buffer.from(junk)]));
    }),
    { numRuns: 60 },
  );
  assert.equal(sluice.proc.exitCode, null);
  assert.equal((await fetch(`${sluice.url}/after-fuzz`)).status, 200);
});
