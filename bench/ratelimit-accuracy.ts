/**
 * Rate-limit accuracy: offer 10x the allowed rate for 10 s and count what is
 * admitted (target: rate × time + burst, ±5%).
 *  1. one instance, local buckets
 *  2. two instances sharing the limit through one Redis (offered load split between them)
 * Allowed: 100 requests/s, burst 20, one key. Offered: 1000 requests/s.
 * Run: node --import tsx bench/ratelimit-accuracy.ts   (after npm run build; needs redis-server)
 */
import { Agent, request } from 'node:http';
import { startBackend, startSluice, startRedis, simplePolicy, pct, verdict } from './limits-common.js';

const RATE = 100;
const BURST = 20;
const OFFERED = 1000;
const SECONDS = 10;

function get(url: string, agent: Agent): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { agent, headers: { 'x-user': 'bench' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

/** Offers OFFERED req/s spread over the urls for SECONDS; returns counts by status and the real duration. */
async function offer(urls: string[]): Promise<{ ok: number; limited: number; other: number; secs: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const counts = { ok: 0, limited: 0, other: 0 };
  const pending: Promise<void>[] = [];
  const t0 = performance.now();
  let sent = 0;
  const total = OFFERED * SECONDS;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * OFFERED));
    while (sent < due) {
      const url = urls[sent % urls.length]!;
      sent++;
      pending.push(
        get(url, agent).then((s) => {
          if (s === 200) counts.ok++;
          else if (s === 429) counts.limited++;
          else counts.other++;
        }),
      );
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  await Promise.all(pending);
  // The proxy sees requests from the first send to the last answer: that is the window the bucket refilled over.
  const secs = (performance.now() - t0) / 1000;
  agent.destroy();
  return { ...counts, secs };
}

function report(name: string, r: { ok: number; limited: number; other: number; secs: number }): void {
  const expected = RATE * r.secs + BURST;
  console.log(
    `${name}: offered ${OFFERED * SECONDS} (all answered within ${r.secs.toFixed(2)} s), admitted ${r.ok} (expected ${expected.toFixed(0)}, ${pct(r.ok, expected)}), ` +
      `429: ${r.limited}, other: ${r.other} ${verdict(Math.abs(r.ok / expected - 1) <= 0.05 && r.other === 0)}`,
  );
}

const backend = await startBackend();
const redis = await startRedis();
const classes = (store: string) => `classes:
  - name: api
    rateLimit: { rate: ${RATE}, per: 1s, burst: ${BURST}, key: header:x-user${store} }
defaultClass: api
`;
try {
  const local = await startSluice(simplePolicy(backend.url, classes('')));
  report('local, 1 instance', await offer([`${local.url}/x`]));
  await local.stop();

  const yaml = simplePolicy(backend.url, classes(`, store: { redis: "${redis.url}" }`));
  const a = await startSluice(yaml);
  const b = await startSluice(yaml);
  const t = Date.now();
  while (!(a.stdout().includes('store connected') && b.stdout().includes('store connected')) && Date.now() - t < 5000) await new Promise((r) => setTimeout(r, 20));
  report('redis, 2 instances', await offer([`${a.url}/x`, `${b.url}/x`]));
  for (const s of [a, b]) console.log(s.stdout().split("\n").filter((l) => l.includes("store")).map((l) => "  log: " + l.slice(0, 160)).join("\n"));
  await Promise.all([a.stop(), b.stop()]);
} finally {
  await redis.stop();
  await backend.close();
}
