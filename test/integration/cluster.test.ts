/**
 * Cluster-wide caps through Redis (issue 11, checks 1-4): three real sluice
 * processes share one real redis-server; one backend records its true maximum
 * in flight, which must never exceed the upstream's maxConcurrent (8).
 */
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startSluice, runCli, writePolicy, type RunningSluice } from '../helpers/sluice.js';
import { startRedis, type RunningRedis } from '../helpers/redis.js';
import { getJson, waitFor } from '../helpers/net.js';
import { closedLoop, closedLoopThread, percentile, sampler } from '../helpers/load.js';
import { Redis } from 'ioredis';

const CAP = 8;
const TTL_MS = 2000;
const INTERVAL_MS = 100;
const DELAY_MS = 100;

let backend: Backend;
let redis: RunningRedis;
let nodes: RunningSluice[] = [];

const policy = (redisUrl: string, cap = CAP): string => `cluster:
  store: { redis: "${redisUrl}" }
  leaseTtl: ${TTL_MS}ms
  renewInterval: ${INTERVAL_MS}ms
upstreams:
  - name: app
    targets: [${backend.url}]
    maxConcurrent: ${cap}
routes:
  - match: { pathPrefix: / }
    upstream: app
classes:
  - name: premium
    priority: 0
    match: { headers: { x-tier: premium } }
    queue: { size: 1000, timeout: 20s }
  - name: free
    priority: 1
    queue: { size: 1000, timeout: 20s }
defaultClass: free
`;

interface PoolView {
  id: string;
  share: number;
  clusterCap: number;
  instances: number;
  mode: string;
}
interface Status {
  inFlight: number;
  queued: number;
  upstreams: { name: string; cluster: { clusterCap: number; share: number; instances: number; mode: string } | null }[];
  cluster: { mode: string; renewErrors: number; pools: PoolView[] };
}

/** Time (ms after t0) at whose end a 200 ms window of samples first averaged ≥ level. */
function firstWindowAtLeast(samples: { at: number; v: number }[], t0: number, level: number): number {
  for (let i = 0; i < samples.length; i++) {
    const end = samples[i]!.at + 200;
    const w = samples.filter((x) => x.at >= samples[i]!.at && x.at < end);
    if (end > samples[samples.length - 1]!.at) break;
    if (w.reduce((n, x) => n + x.v, 0) / w.length >= level) return end - t0;
  }
  return Infinity;
}

const status = (s: RunningSluice): Promise<Status> => getJson<Status>(`${s.admin}/status`);
const share = async (s: RunningSluice): Promise<number> => (await status(s)).upstreams[0]!.cluster!.share;

before(async () => {
  backend = await startBackend({ delayMs: DELAY_MS });
  redis = await startRedis();
  const yaml = policy(redis.url);
  nodes = await Promise.all([startSluice(yaml), startSluice(yaml), startSluice(yaml)]);
  for (const n of nodes) await waitFor(async () => (await status(n)).cluster.mode === 'leased', 5000, 'joined');
});

after(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
  await backend?.close();
});

afterEach(async () => {
  // Every request ended: nothing in flight or queued anywhere, the backend idle.
  for (const n of nodes) {
    if (n.proc.exitCode !== null || n.proc.signalCode !== null) continue;
    await waitFor(async () => {
      const s = await status(n);
      return s.inFlight === 0 && s.queued === 0;
    }, 10_000, 'drained');
  }
  await waitFor(() => backend.inFlight === 0, 5000, 'backend idle');
});

test('/status shows the cluster cap, this instance\'s share, the instances seen and the mode', async () => {
  await waitFor(async () => (await status(nodes[0]!)).upstreams[0]!.cluster!.instances === 3, 3000, 'three members');
  const s = await status(nodes[0]!);
  assert.deepEqual({ ...s.upstreams[0]!.cluster, share: 0 }, { clusterCap: CAP, share: 0, instances: 3, mode: 'leased' });
  // Idle: the cap is split evenly (3 + 3 + 2) once the shares settled.
  // The sum reaches the cap before the split is even (shares move only once released), so wait for the split itself.
  await waitFor(async () => (await Promise.all(nodes.map(share))).sort().join() === '2,3,3', 5000, 'shares settled evenly');
  const m = await (await fetch(`${nodes[0]!.admin}/metrics`)).text();
  assert.match(m, /sluice_cluster_share\{[^}]*sluice_cluster_pool="upstream:app"[^}]*\} \d/);
  assert.match(m, /sluice_cluster_fallback(\{[^}]*\})? 0/);
  assert.match(m, /sluice_cluster_instances\{[^}]*\} 3/);
});

test('1. all load on A: the backend never sees more than 8, A reaches ≥ 90% of capacity within 2 s', async (t) => {
  backend.reset();
  const inflight = sampler(() => backend.inFlight);
  const t0 = performance.now();
  const run = closedLoop(`${nodes[0]!.url}/one`, 40);
  await new Promise((r) => setTimeout(r, 3500));
  await run.stop();
  inflight.stop();
  assert.ok(backend.maxInFlight <= CAP, `backend saw ${backend.maxInFlight}`);
  // Capacity in use: the backend's own in-flight count, averaged over 200 ms windows.
  const reached = firstWindowAtLeast(inflight.samples, t0, 0.9 * CAP);
  assert.ok(reached <= 2000, `90% of capacity reached after ${reached} ms`);
  t.diagnostic(`90% of capacity after ${reached.toFixed(0)} ms; backend max ${backend.maxInFlight}`);
  assert.equal(await share(nodes[0]!), CAP);
  // A waited for its share to grow from its idle part to the whole cap, once.
  const m = await (await fetch(`${nodes[0]!.admin}/metrics`)).text();
  const waited = /sluice_cluster_share_wait_seconds_count\{[^}]*sluice_cluster_pool="upstream:app"[^}]*\} (\d+)/.exec(m);
  assert.ok(waited && Number(waited[1]) >= 1, 'share wait recorded');
  assert.equal(run.errors, 0);
  assert.deepEqual([...run.statuses.keys()], [200]);
});

test('2. free floods on A and B, premium on C: premium p99 stays within 1.5× of its p99 without flood', async (t) => {
  backend.reset();
  const premium = closedLoop(`${nodes[2]!.url}/p?delay=200`, 3, { 'x-tier': 'premium' });
  await new Promise((r) => setTimeout(r, 1000));
  const quietFrom = performance.now();
  await new Promise((r) => setTimeout(r, 3000));
  const quiet = premium.ok.filter((o) => o.at >= quietFrom).map((o) => o.ms);
  const floodA = closedLoopThread(`${nodes[0]!.url}/f?delay=200`, 30);
  const floodB = closedLoopThread(`${nodes[1]!.url}/f?delay=200`, 30);
  await new Promise((r) => setTimeout(r, 1000));
  const floodFrom = performance.now();
  await new Promise((r) => setTimeout(r, 3000));
  const flooded = premium.ok.filter((o) => o.at >= floodFrom).map((o) => o.ms);
  const [, fa, fb] = await Promise.all([premium.stop(), floodA.stop(), floodB.stop()]);
  const p99q = percentile(quiet, 99);
  const p99f = percentile(flooded, 99);
  assert.ok(backend.maxInFlight <= CAP, `backend saw ${backend.maxInFlight}`);
  t.diagnostic(`premium p99 ${p99q.toFixed(1)} ms alone, ${p99f.toFixed(1)} ms under flood; backend max ${backend.maxInFlight}`);
  assert.ok(fa.ok + fb.ok > 50, 'the floods were served with what premium leaves');
  assert.ok(p99f <= 1.5 * p99q, `premium p99 ${p99f.toFixed(1)} ms under flood vs ${p99q.toFixed(1)} ms without`);
});

test('3. SIGKILL of A: B and C take over its share after the TTL, never earlier, within TTL + 1 s', async (t) => {
  backend.reset();
  const [a, b, c] = nodes as [RunningSluice, RunningSluice, RunningSluice];
  const runs = [closedLoop(`${a.url}/k`, 20), closedLoop(`${b.url}/k`, 20), closedLoop(`${c.url}/k`, 20)];
  await new Promise((r) => setTimeout(r, 1500));
  const before = (await share(b)) + (await share(c));
  assert.ok(before < CAP, `B and C hold ${before} before the kill`);
  a.proc.kill('SIGKILL');
  const killedAt = performance.now();
  let tookOver = Infinity;
  let early = 0;
  while (performance.now() - killedAt < TTL_MS + 2000) {
    const bc = (await share(b)) + (await share(c));
    const t = performance.now() - killedAt;
    if (bc > before && t < TTL_MS - INTERVAL_MS - 50) early = Math.max(early, bc);
    if (bc === CAP) {
      tookOver = t;
      break;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  await Promise.all(runs.map((r) => r.stop()));
  nodes = [b, c];
  t.diagnostic(`B + C held ${before}, all ${CAP} after ${tookOver.toFixed(0)} ms (TTL ${TTL_MS} ms); backend max ${backend.maxInFlight}`);
  assert.equal(early, 0, `B and C grew to ${early} before A's lease expired`);
  assert.ok(tookOver <= TTL_MS + 1000, `took over after ${tookOver.toFixed(0)} ms`);
  assert.ok(backend.maxInFlight <= CAP, `backend saw ${backend.maxInFlight}`);
});

test('4. Redis stopped mid-run, then restarted: fallback shares keep serving, shares return within 2 s', async (t) => {
  backend.reset();
  const [b, c] = nodes as [RunningSluice, RunningSluice];
  const runs = [closedLoop(`${b.url}/r`, 20), closedLoop(`${c.url}/r`, 20)];
  await new Promise((r) => setTimeout(r, 1000));
  await redis.kill();
  const downAt = performance.now();
  for (const n of [b, c]) await waitFor(async () => (await status(n)).cluster.mode === 'fallback', 3000, 'fallback mode');
  await waitFor(() => b.stdout().includes('serving on static fallback shares'), 2000, 'log line');
  // After the TTL, each serves on ⌊8 / 2⌋ = 4.
  await new Promise((r) => setTimeout(r, TTL_MS + 500));
  assert.deepEqual(await Promise.all([b, c].map(share)), [4, 4]);
  const served = runs.reduce((n, r) => n + r.ok.filter((o) => o.at > downAt + 500).length, 0);
  assert.ok(served > 20, `only ${served} requests served during the outage`);
  const m = await (await fetch(`${b.admin}/metrics`)).text();
  assert.match(m, /sluice_cluster_fallback(\{[^}]*\})? 1/);
  assert.match(m, /sluice_cluster_renew_errors_total(\{[^}]*\})? [1-9]/);
  await redis.restart();
  const upAt = performance.now();
  for (const n of [b, c]) await waitFor(async () => (await status(n)).cluster.mode === 'leased', 2000, 'leased again');
  await waitFor(async () => (await share(b)) + (await share(c)) === CAP, 2000 - (performance.now() - upAt), 'shares back');
  t.diagnostic(`${served} requests served on fallback shares; shares back ${(performance.now() - upAt).toFixed(0)} ms after Redis returned`);
  // The log line may reach the pipe a moment after /status says leased.
  await waitFor(() => b.stdout().includes('leased shares restored'), 2000, 'restored log line');
  await Promise.all(runs.map((r) => r.stop()));
  assert.ok(backend.maxInFlight <= CAP, `backend saw ${backend.maxInFlight}`);
  assert.equal(runs.reduce((n, r) => n + r.errors, 0), 0);
});

test('Redis frozen (SIGSTOP, renewals time out): fallback, never above 8; SIGCONT: leased again', async () => {
  backend.reset();
  const [b, c] = nodes as [RunningSluice, RunningSluice];
  const runs = [closedLoop(`${b.url}/s`, 20), closedLoop(`${c.url}/s`, 20)];
  await new Promise((r) => setTimeout(r, 800));
  redis.proc.kill('SIGSTOP');
  try {
    for (const n of [b, c]) await waitFor(async () => (await status(n)).cluster.mode === 'fallback', 3000, 'fallback on a slow store');
    await new Promise((r) => setTimeout(r, TTL_MS + 300));
  } finally {
    redis.proc.kill('SIGCONT');
  }
  for (const n of [b, c]) await waitFor(async () => (await status(n)).cluster.mode === 'leased', 3000, 'leased again');
  await new Promise((r) => setTimeout(r, 500));
  await Promise.all(runs.map((r) => r.stop()));
  assert.ok(backend.maxInFlight <= CAP, `backend saw ${backend.maxInFlight}`);
  assert.ok(runs.every((r) => r.ok.length > 20));
});

test('--workers 2 with a cluster policy: each worker is a member of the Redis cluster', async () => {
  backend.reset();
  const w = await startSluice(policy(redis.url), ['--workers', '2']);
  try {
    const [b, c] = nodes as [RunningSluice, RunningSluice];
    await waitFor(async () => (await status(b)).upstreams[0]!.cluster!.instances === 4, 5000, 'four members');
    const runs = [closedLoop(`${w.url}/w`, 20), closedLoop(`${b.url}/w`, 10), closedLoop(`${c.url}/w`, 10)];
    await new Promise((r) => setTimeout(r, 2000));
    await Promise.all(runs.map((r) => r.stop()));
    assert.ok(backend.maxInFlight <= CAP, `backend saw ${backend.maxInFlight}`);
    const ws = await getJson<{ workers: { pid: number; status: Status & { cluster: { member: string } } }[]; inFlight: number; queued: number }>(`${w.admin}/status`);
    assert.deepEqual(ws.workers.map((x) => x.status.cluster.mode), ['leased', 'leased']);
    // A crashed worker's Redis leases are released by the primary at once, not after the TTL.
    const victim = ws.workers[0]!;
    const key = 'sluice:cluster:pool:upstream:app';
    const rc = new Redis(redis.url);
    try {
      assert.equal(await rc.hexists(key, victim.status.cluster.member), 1);
      process.kill(victim.pid, 'SIGKILL');
      const killedAt = performance.now();
      await waitFor(async () => (await rc.hexists(key, victim.status.cluster.member)) === 0, TTL_MS, 'lease released');
      assert.ok(performance.now() - killedAt < TTL_MS - INTERVAL_MS, 'released before its TTL');
    } finally {
      rc.disconnect();
    }
    await waitFor(async () => {
      const s = await getJson<{ workers: { status: Status | null }[] }>(`${w.admin}/status`);
      return s.workers.length === 2 && s.workers.every((x) => x.status?.cluster.mode === 'leased');
    }, 15_000, 'replacement worker joined');
    await waitFor(async () => {
      const s = await getJson<{ inFlight: number; queued: number }>(`${w.admin}/status`);
      return s.inFlight === 0 && s.queued === 0;
    }, 10_000, 'workers drained');
  } finally {
    assert.equal(await w.stop(), 0);
  }
  // Its members left gracefully: their shares are back at once.
  await waitFor(async () => (await status(nodes[0]!)).upstreams[0]!.cluster!.instances === 2, 3000, 'two members again');
});

test('an instance whose caps differ refuses to join, naming the policy key', async () => {
  const file = await writePolicy(policy(redis.url, 10));
  const r = await runCli(['serve', '--config', file, '--port', '0', '--admin-port', '0']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /upstreams\[app\]\.maxConcurrent is 10 here but 8 in the cluster/);
});
