// Scenario 7: rate-limit accuracy. Offer 10× the allowed rate for a fixed time
// and count what is admitted; target: rate × time + burst, ±5%.
//   - one sluice instance, local token buckets
//   - two sluice instances sharing the limit through one redis-server on a random port
//     (the offered load alternates between them)
import { oneClassPolicy, startBackend, startRedis, startSluice, type Peer, type Redis } from '../lib/peers.js';
import { shellLine, sleep } from '../lib/proc.js';
import { fmt, fmtS, summarize } from '../lib/stats.js';
import { LOADGEN_CORE, openLoop, openLoopOther } from '../lib/tools.js';
import { errMsg, interleaved, type Ctx, type Scenario, type Section } from '../lib/types.js';

const RATE = 100; // requests/s
const BURST = 20;
const OFFERED = 10 * RATE;

const policy = (backendPort: number, redisUrl?: string): string =>
  oneClassPolicy(backendPort, {
    classExtra: `rateLimit: { rate: ${RATE}, per: 1s, burst: ${BURST}, key: header:x-tier${redisUrl ? `, store: { redis: "${redisUrl}" }` : ''} }`,
    comment: `one class, rate limit keyed by x-tier${redisUrl ? ', shared through Redis' : ''}`,
  });

interface RunOut {
  admitted: number;
  expected: number;
  limited: number;
  other: number;
  sent: number;
  windowS: number;
  sendWindowS: number;
}

interface Setup {
  name: string;
  peers: Peer[];
  notRun?: string;
}

export const scenario: Scenario = {
  id: 'ratelimit',
  title: `7. Rate-limit accuracy (10× the allowed rate; one instance, and two sharing Redis)`,
  async run(ctx: Ctx): Promise<Section> {
    const duration = ctx.quick ? 2 : 10;
    const backend = await startBackend();
    const commands = [backend.command];
    const configs: Record<string, string> = {};
    let redis: Redis | undefined;
    const setups: Setup[] = [
      { name: 'sluice, 1 instance, local buckets', peers: [] },
      { name: 'sluice, 2 instances, shared Redis', peers: [] },
    ];
    const genArgs = (ports: number[], key: string): string[] => [
      'bench/lib/openloop.mjs',
      ...ports.flatMap((p) => ['--url', `http://127.0.0.1:${p}/`]),
      '--duration',
      String(duration),
      '--class',
      `${key}=${OFFERED}`,
      '--timeout-ms',
      '10000',
    ];
    try {
      if (!ctx.sluice.ok) throw new Error(ctx.sluice.reason);
      try {
        const p = await startSluice(ctx.tmp, policy(backend.port), 'sluice-rl-local');
        setups[0]!.peers.push(p);
        commands.push(`# ${setups[0]!.name}: ${p.command}`);
        configs[`ratelimit / ${setups[0]!.name}`] = p.config!;
        ctx.log(`  started ${setups[0]!.name}`);
      } catch (e) {
        setups[0]!.notRun = errMsg(e);
      }
      try {
        redis = await startRedis(ctx.tmp, 'redis-rl');
        commands.push(`# redis: ${redis.command}`);
        for (const n of ['a', 'b']) {
          const p = await startSluice(ctx.tmp, policy(backend.port, redis.url), `sluice-rl-redis-${n}`);
          setups[1]!.peers.push(p);
          commands.push(`# ${setups[1]!.name} (${n}): ${p.command}`);
          configs[`ratelimit / ${setups[1]!.name}`] = p.config!.split(redis.url).join('redis://127.0.0.1:REDIS_PORT');
        }
        // both must have connected before the measurement (else they would fall back to local buckets)
        const until = Date.now() + 10_000;
        while (!setups[1]!.peers.every((p) => p.server!.stdout().includes('rate-limit store connected'))) {
          if (Date.now() > until) throw new Error('the instances did not log "rate-limit store connected" within 10 s');
          await sleep(20);
        }
        ctx.log(`  started ${setups[1]!.name}`);
      } catch (e) {
        setups[1]!.notRun = errMsg(e);
        ctx.log(`  NOT RUN ${setups[1]!.name}: ${setups[1]!.notRun}`);
      }
      commands.push(
        `# load, per run (a fresh key each run; several --url: round-robin): ${shellLine('taskset', ['-c', String(LOADGEN_CORE), 'node', ...genArgs([0], 'KEY')]).replace('127.0.0.1:0', '127.0.0.1:PORT')}`,
      );
      for (const s of setups) {
        if (s.notRun || s.peers.length === 0) continue;
        const w = genArgs(s.peers.map((p) => p.port), `warmup-${s.peers.length}`);
        w[w.indexOf('--duration') + 1] = '1';
        await openLoop(w.slice(1), 1);
      }
      const res = await interleaved(ctx.reps, setups, async (s, rep): Promise<RunOut | undefined> => {
        if (s.notRun || s.peers.length === 0) return undefined;
        try {
          const key = `run${rep}-${s.peers.length}`;
          await sleep(300); // any earlier bucket state has refilled (burst / rate = 0.2 s); each run uses a new key anyway
          const gen = await openLoop(genArgs(s.peers.map((p) => p.port), key).slice(1), duration);
          const c = gen.classes[key]!;
          const other = openLoopOther(c);
          // the bucket refills over the time the proxy took decisions: from the first answer to the last
          const out = { admitted: c.ok, expected: RATE * gen.answerWindowS + BURST, limited: c.rejected, other, sent: c.sent, windowS: gen.answerWindowS, sendWindowS: gen.sendWindowS };
          ctx.log(`    rep ${rep + 1} ${s.name}: admitted ${out.admitted} of ${out.sent} (expected ${fmt(out.expected)}; answers over ${fmt(out.windowS, 2)} s, sent over ${fmt(out.sendWindowS, 2)} s), 429 ${out.limited}, other ${out.other}`);
          return out;
        } catch (e) {
          s.notRun = `failed in rep ${rep + 1}: ${errMsg(e)}`;
          ctx.log(`    ${s.name}: ${s.notRun}`);
          return undefined;
        }
      });
      const body = [
        `Class limit: ${RATE} requests/s, burst ${BURST}, keyed by a header (one key per run). Offered: ${OFFERED} requests/s (10×) for ${duration} s, open loop from the Node generator (keep-alive); with two instances the requests alternate between them. Expected admitted = ${RATE} × window + ${BURST}, where the window is the time from the first answer to the last (the span over which the proxy took its decisions; ≈ ${duration} s, longer when the proxy falls behind the offered load). Each setup gets one unmeasured 1 s warm-up run first (JIT, connections). Target: admitted within ±5% of expected, and no answer other than 200 or 429. ${ctx.reps} interleaved runs; median (min–max).`,
        '',
        '| setup | sent | window s | expected admitted | admitted (200) | deviation | within ±5%? | 429 | other answers / errors |',
        '|---|---|---|---|---|---|---|---|---|',
      ];
      const notes: string[] = [];
      for (const s of setups) {
        const rs = (res.get(s) ?? []).filter((x): x is RunOut => !!x);
        if (rs.length === 0) {
          body.push(`| ${s.name} | not run: ${(s.notRun ?? 'did not start').replace(/\|/g, '\\|')} | | | | | | | |`);
          continue;
        }
        const dev = summarize(rs.map((r) => (100 * (r.admitted - r.expected)) / r.expected));
        const ok = Math.abs(dev.median) <= 5;
        const other = rs.reduce((a, r) => a + r.other, 0);
        body.push(
          `| ${s.name}${s.notRun ? ` (incomplete: ${s.notRun.replace(/\|/g, '\\|')})` : ''} | ${fmtS(summarize(rs.map((r) => r.sent)))} | ${fmtS(summarize(rs.map((r) => r.windowS)), 2)} | ${fmtS(summarize(rs.map((r) => r.expected)))} | ${fmtS(summarize(rs.map((r) => r.admitted)))} | ${fmtS(dev, 1, '%')} | ${ok ? 'yes' : '**no**'} | ${fmtS(summarize(rs.map((r) => r.limited)))} | ${other} in all runs |`,
        );
        if (!ok) notes.push(`- ${s.name}: admitted ${fmt(dev.median, 1)}% off the expected count, ${fmt(Math.abs(dev.median) - 5, 1)} points beyond ±5%.`);
        if (other > 0) notes.push(`- ${s.name}: ${other} answers were neither 200 nor 429 (or failed).`);
      }
      body.push('', ...(notes.length ? ['Targets missed:', ...notes] : ['Every target above was met.']));
      return { body, commands, configs };
    } finally {
      for (const s of setups) for (const p of s.peers) await p.stop();
      await redis?.server.stop();
      await backend.server.stop();
    }
  },
};
