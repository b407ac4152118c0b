/**
 * Memory of per-key rate limits with 1,000,000 distinct client IPs (key: ip),
 * through the class limiter the proxy uses. Keys are inserted as fast as
 * possible (all still limited at the end: worst case), then time passes and the
 * sweeper must give the memory back.
 * Run: node --expose-gc --import tsx bench/ratelimit-keys.ts
 */
import { systemClock } from '../src/clock.js';
import { parsePolicy } from '../src/policy/load.js';
import { ClassLimiter } from '../src/admit/index.js';
import type { RequestContext } from '../src/accept/context.js';

const N = 1_000_000;
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
if (!r.ok) throw new Error('bad policy');
const klass = r.policy.classes[0]!;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(0)} MiB`;

gc();
const before = process.memoryUsage();
const lim = new ClassLimiter(klass, klass.rateLimit!, systemClock, undefined);
const ctx = { clientIp: '', peer: '' } as unknown as RequestContext & { clientIp: string };
const t0 = performance.now();
let admitted = 0;
for (let i = 0; i < N; i++) {
  ctx.clientIp = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  if (lim.admit(ctx) === lim.admit(ctx)) admitted++; // two requests per key
}
const ms = performance.now() - t0;
gc();
const full = process.memoryUsage();
console.log(
  `${N} distinct keys (2 requests each) in ${(ms / 1000).toFixed(2)} s (${((2 * N) / (ms / 1000) / 1e6).toFixed(2)} M decisions/s); ` +
    `tracked ${lim.local.size}; heap +${mb(full.heapUsed - before.heapUsed)} (${((full.heapUsed - before.heapUsed) / N).toFixed(0)} B/key), RSS ${mb(full.rss)}`,
);
// Buckets refill in burst/rate = 0.5 s; the sweeper then drops idle keys in batches.
const t1 = performance.now();
while (lim.local.size > 0 && performance.now() - t1 < 30_000) await new Promise((res) => setTimeout(res, 100));
gc();
const after = process.memoryUsage();
console.log(`after idle: tracked ${lim.local.size} after ${((performance.now() - t1) / 1000).toFixed(1)} s; heap ${mb(after.heapUsed)}, RSS ${mb(after.rss)} ${lim.local.size === 0 && full.rss < 400e6 ? 'PASS' : 'FAIL'}`);
lim.close();
void admitted;
