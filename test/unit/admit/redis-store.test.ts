/** The Lua GCRA against a real redis-server: integer µs TATs, exact fresh keys, reservation and refund. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection } from 'node:net';
import { RedisStore } from '../../../src/admit/redis-store.js';
import { gcraParams, type Take } from '../../../src/admit/gcra.js';
import { silentLogger } from '../../../src/telemetry/log.js';
import { startRedis, type RunningRedis } from '../../helpers/redis.js';

let redis: RunningRedis;
let store: RedisStore;
const out = (): Take => ({ waitMs: 0, rejected: false, remaining: 0 });

before(async () => {
  redis = await startRedis();
  store = new RedisStore(redis.url, silentLogger).acquire();
  await store.ready;
});

after(async () => {
  store.release();
  await redis.stop();
});

/** One raw RESP command (GET), to see what the script stored. */
function rawGet(key: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection(redis.port, '127.0.0.1', () => s.write(`GET ${key}\r\n`));
    s.setEncoding('utf8').once('data', (d: string) => {
      s.destroy();
      resolve(d);
    });
    s.on('error', reject);
  });
}

test('fresh keys under rate 1 per 1h, burst 1: all 200 admitted; the TAT is stored as an integer µs string', async () => {
  const p = gcraParams(1, 3_600_000, 1);
  let ok = 0;
  for (let i = 0; i < 200; i++) if (!(await store.take(`t:fresh:${i}`, p, 0, out())).rejected) ok++;
  assert.equal(ok, 200);
  assert.equal((await store.take('t:fresh:0', p, 0, out())).rejected, true);
  const raw = await rawGet('t:fresh:1');
  assert.match(raw, /^\$1[5-7]\r\n\d{15,17}\r\n$/, `stored ${JSON.stringify(raw)}`);
});

test('a fresh key admits exactly burst at once through Redis', async () => {
  for (const burst of [1, 2, 7, 50]) {
    const p = gcraParams(3, 1000, burst);
    let n = 0;
    while (!(await store.take(`t:burst:${burst}`, p, 0, out())).rejected && n <= burst) n++;
    assert.equal(n, burst);
  }
});

test('a reserved token (onLimit: queue) is given back by refund', async () => {
  const p = gcraParams(1, 1000, 1);
  const o = out();
  await store.take('t:refund', p, 5000, o);
  assert.equal(o.waitMs, 0);
  await store.take('t:refund', p, 5000, o);
  assert.ok(o.waitMs > 900 && o.waitMs <= 1000, `reserved ${o.waitMs} ms ahead`);
  await store.refund('t:refund', p);
  await store.take('t:refund', p, 5000, o);
  assert.ok(o.waitMs > 900 && o.waitMs <= 1000, `after the refund the next is again one interval ahead, got ${o.waitMs}`);
});
