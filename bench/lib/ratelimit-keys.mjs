// Plain JavaScript on purpose: run without a TypeScript loader so that its heap
// and RSS are sluice's limiter alone (plus Node), not a loader's.
// Memory of per-key rate limits: N distinct keys through sluice's ClassLimiter
// (the object the proxy uses per class), loaded from a build's dist/ directory.
//
//   node --expose-gc bench/lib/ratelimit-keys.mjs --dist dist --keys 1000000 [--wait-ms 30000]
//
// Key: `ip`; the client addresses are strings 127.a.b.c (no traffic is sent).
// Two decisions per key, as fast as possible, so every key is still tracked at
// the end (worst case). Then it waits until the sweeper has dropped every idle
// key (or --wait-ms passes). Prints one JSON object on stdout.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const argv = process.argv.slice(2);
const opt = (n, d) => {
  const i = argv.indexOf(`--${n}`);
  return i >= 0 ? argv[i + 1] : d;
};
const dist = path.resolve(opt('dist', 'dist'));
const N = Number(opt('keys', '1000000'));
const waitMs = Number(opt('wait-ms', '30000'));
const imp = (p) => import(pathToFileURL(path.join(dist, p)).href);
const { systemClock } = await imp('clock.js');
const { parsePolicy } = await imp('policy/load.js');
const { ClassLimiter } = await imp('admit/index.js');

const r = parsePolicy(
  `upstreams: [{ name: a, targets: ["http://127.0.0.1:1"] }]
routes: [{ upstream: a }]
classes:
  - name: api
    rateLimit: { rate: 10, per: 1s, burst: 5, key: ip }
defaultClass: api
`,
  'bench.yaml',
);
if (!r.ok) throw new Error(`bad policy: ${JSON.stringify(r)}`);
const klass = r.policy.classes[0];
const gc = globalThis.gc ?? (() => {});
let peakRss = 0;
const sample = () => {
  const x = process.memoryUsage.rss();
  if (x > peakRss) peakRss = x;
};
const sampler = setInterval(sample, 100);

gc();
const before = process.memoryUsage();
const lim = new ClassLimiter(klass, klass.rateLimit, systemClock, undefined);
const ctx = { clientIp: '', peer: '' };
const t0 = performance.now();
let admitted = 0;
for (let i = 0; i < N; i++) {
  ctx.clientIp = `127.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  if (lim.admit(ctx) === lim.admit(ctx)) admitted++;
  if ((i & 0xffff) === 0) sample();
}
const insertMs = performance.now() - t0;
const trackedFull = lim.local.size;
sample();
gc();
const full = process.memoryUsage();
const t1 = performance.now();
while (lim.local.size > 0 && performance.now() - t1 < waitMs) await new Promise((res) => setTimeout(res, 100));
const sweepMs = performance.now() - t1;
gc();
const after = process.memoryUsage();
clearInterval(sampler);
lim.close();
process.stdout.write(
  `${JSON.stringify({
    keys: N,
    insertMs,
    decisionsPerS: (2 * N) / (insertMs / 1000),
    trackedFull,
    heapBefore: before.heapUsed,
    heapFull: full.heapUsed,
    rssFull: full.rss,
    peakRss,
    trackedAfter: lim.local.size,
    sweepMs,
    heapAfter: after.heapUsed,
    rssAfter: after.rss,
    admitted,
  })}\n`,
);
process.exit(0);
