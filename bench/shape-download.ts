/**
 * Download shaping accuracy through the proxy (child process, HTTP/1.1):
 *  1. one 20 MB download at 2 MiB/s (target ±5%)
 *  2. eight concurrent downloads sharing 4 MiB/s (aggregate ±5%, each stream ±20% of 1/8)
 * Run: node --import tsx bench/shape-download.ts   (after npm run build)
 */
import { startBackend, startSluice, simplePolicy, download, MiB, pct, verdict } from './limits-common.js';

const backend = await startBackend();
const sluice = await startSluice(
  simplePolicy(
    backend.url,
    `classes:
  - name: one
    match: { headers: { x-tier: one } }
    bandwidth: { download: 2MiB/s }
  - name: eight
    match: { headers: { x-tier: eight } }
    bandwidth: { download: 4MiB/s }
  - name: free
defaultClass: free
`,
  ),
);
try {
  const n = 20_000_000;
  const r = await download(`${sluice.url}/bytes?n=${n}`, { 'x-tier': 'one' });
  const rate = r.bytes / (r.ms / 1000);
  console.log(`single 20 MB @ 2 MiB/s: ${(rate / MiB).toFixed(3)} MiB/s over ${(r.ms / 1000).toFixed(2)} s (${pct(rate, 2 * MiB)}) ${verdict(Math.abs(rate / (2 * MiB) - 1) <= 0.05)}`);

  const each = 6 * MiB;
  const t0 = performance.now();
  const rs = await Promise.all(Array.from({ length: 8 }, () => download(`${sluice.url}/bytes?n=${each}`, { 'x-tier': 'eight' })));
  const total = rs.reduce((a, x) => a + x.bytes, 0);
  const ms = performance.now() - t0;
  const agg = total / (ms / 1000);
  console.log(`eight concurrent @ 4 MiB/s: aggregate ${(agg / MiB).toFixed(3)} MiB/s over ${(ms / 1000).toFixed(2)} s (${pct(agg, 4 * MiB)}) ${verdict(Math.abs(agg / (4 * MiB) - 1) <= 0.05)}`);
  let worst = 0;
  const per = rs.map((x) => {
    const s = x.bytes / (x.ms / 1000);
    worst = Math.max(worst, Math.abs(s / (0.5 * MiB) - 1));
    return (s / MiB).toFixed(3);
  });
  console.log(`  per stream MiB/s: ${per.join(' ')}; worst deviation from 0.5 MiB/s ${(worst * 100).toFixed(1)}% ${verdict(worst <= 0.2)}`);
} finally {
  await sluice.stop();
  await backend.close();
}
