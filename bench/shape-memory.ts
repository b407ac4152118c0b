/**
 * Proxy RSS while shaping 100 concurrent 100 MB downloads (target < 200 MB):
 * the class is shaped to 50 MiB/s (~0.5 MiB/s per stream), so bodies must be
 * held back by backpressure, never buffered. Samples the proxy's RSS for 15 s.
 * Run: node --import tsx bench/shape-memory.ts   (after npm run build)
 */
import { request, type ClientRequest } from 'node:http';
import { startBackend, startSluice, simplePolicy, MiB, verdict } from './limits-common.js';

const backend = await startBackend();
const sluice = await startSluice(
  simplePolicy(backend.url, `classes:
  - name: bulk
    bandwidth: { download: 50MiB/s }
defaultClass: bulk
`),
);
const reqs: ClientRequest[] = [];
let received = 0;
try {
  const idle = await sluice.rss();
  for (let i = 0; i < 100; i++) {
    const req = request(`${sluice.url}/bytes?n=${100_000_000}`, { agent: false }, (res) => res.on('data', (d: Buffer) => (received += d.length)));
    req.on('error', () => {});
    req.end();
    reqs.push(req);
  }
  let max = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 15_000) {
    await new Promise((r) => setTimeout(r, 500));
    max = Math.max(max, await sluice.rss());
  }
  const secs = (performance.now() - t0) / 1000;
  console.log(`100 concurrent 100 MB downloads shaped to 50 MiB/s: idle RSS ${(idle / MiB).toFixed(0)} MiB, max RSS ${(max / MiB).toFixed(0)} MiB ${verdict(max < 200e6)}; ` +
    `delivered ${(received / MiB).toFixed(0)} MiB in ${secs.toFixed(1)} s = ${(received / MiB / secs).toFixed(1)} MiB/s`);
} finally {
  for (const r of reqs) r.destroy();
  await sluice.stop();
  await backend.close();
}
