/**
 * Why the admit stage does not use bottleneck 2.19.5 (kept as a devDependency for this bench):
 *  1. memory and timers of one limiter per key (Bottleneck.Group with a reservoir)
 *  2. cluster mode (ioredis datastore) on the local redis-server: offered 1000 jobs/s for 5 s
 *     to two limiters sharing reservoir 20 + 100/s, then 5 s without new jobs: do queued jobs drain?
 * Run: node --expose-gc --import tsx bench/bottleneck-eval.ts   (needs redis-server)
 */
import Bottleneck from 'bottleneck';
import { startRedis } from './limits-common.js';

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
{
  const N = 50_000;
  gc();
  const before = process.memoryUsage().heapUsed;
  const g = new Bottleneck.Group({ reservoir: 10, reservoirIncreaseAmount: 1, reservoirIncreaseInterval: 250, reservoirIncreaseMaximum: 10 });
  const t0 = performance.now();
  for (let i = 0; i < N; i++) g.key(`10.0.${i >> 8}.${i & 255}`);
  const ms = performance.now() - t0;
  gc();
  const per = (process.memoryUsage().heapUsed - before) / N;
  console.log(`Group of ${N} keyed limiters: ${per.toFixed(0)} B heap per key (→ ${((per * 1e6) / 1e9).toFixed(1)} GB for 1M keys), ${((ms * 1000) / N).toFixed(0)} µs to create each, one heartbeat interval each`);
  await g.disconnect();
  for (const k of g.keys()) g.deleteKey(k);
}

const redis = await startRedis();
try {
  const mk = (): Bottleneck =>
    new Bottleneck({
      id: `eval-${process.pid}`,
      datastore: 'ioredis',
      clearDatastore: true,
      clientOptions: { host: '127.0.0.1', port: redis.port },
      reservoir: 20,
      reservoirIncreaseAmount: 25,
      reservoirIncreaseInterval: 250,
      reservoirIncreaseMaximum: 20,
    });
  const a = mk();
  const b = mk();
  let errors = 0;
  for (const l of [a, b]) l.on('error', () => errors++);
  await a.ready();
  await b.ready();
  let ran = 0;
  let failed = 0;
  const t0 = Date.now();
  const iv = setInterval(() => {
    for (let i = 0; i < 10; i++) {
      void (i % 2 ? a : b).schedule({ expiration: 20_000 }, async () => void ran++).catch(() => failed++);
    }
  }, 10);
  await new Promise((r) => setTimeout(r, 5000));
  clearInterval(iv);
  const during = ran;
  const el = (Date.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 5000));
  const queued = a.counts().QUEUED! + b.counts().QUEUED!;
  console.log(
    `cluster mode: ran ${during} jobs in ${el.toFixed(1)} s (expected ~${(20 + 100 * el).toFixed(0)}); ` +
      `in the next 5 s with ${queued} still queued it ran ${ran - during} more (expected ~500): ${ran - during < 250 ? 'STALLED' : 'ok'}; errors ${errors}, failed ${failed}`,
  );
  await Promise.race([Promise.all([a.disconnect(false), b.disconnect(false)]), new Promise((r) => setTimeout(r, 1000))]);
} finally {
  await redis.stop();
}
process.exit(0);
