// Scenario 4: priority under overload. A fragile backend (SLOTS concurrent
// slots, SERVICE_MS each, answers 503 itself when over its slots) gets premium
// and free traffic at 3x and at 10x its capacity from an open-loop generator. Peers:
// direct (no protection), NGINX with max_conns (no queue in open-source NGINX:
// FIFO-less rejection), HAProxy FIFO (server maxconn + timeout queue), HAProxy
// with `http-request set-priority-class`, sluice with one class (FIFO) and
// sluice with premium/free classes.
import { oneClassPolicy, priorityPolicy, startBackend, startHaproxy, startNginx, startSluice, directPeer, type Peer } from '../lib/peers.js';
import { shellLine } from '../lib/proc.js';
import { fmt, fmtS, summarize } from '../lib/stats.js';
import { startAll, stopAll } from '../lib/throughput.js';
import { LOADGEN_CORE, openLoop, openLoopOther, type OpenLoopClass, type OpenLoopOut } from '../lib/tools.js';
import { errMsg, interleaved, type Ctx, type Scenario, type Section } from '../lib/types.js';

const SLOTS = 8;
const SERVICE_MS = 20;
const CAPACITY = (SLOTS * 1000) / SERVICE_MS; // req/s
const PREMIUM_SHARE = 0.25;
/**
 * The other peers log nothing per request (NGINX `access_log off`, HAProxy without a
 * `log` line): sluice's access log (a synchronous JSON line per request, rejections
 * included) is off too, so that all of them do the same work.
 */
const NO_ACCESS_LOG = 'log: { access: false }\n';
/** Same classes plus 2 slots held for premium alone: what a reserve costs the other class. */
const RESERVE_PEER = 'sluice premium/free, premium reserve 2';
/** Same classes, each queue served newest first while it stands (`lifo: adaptive`): a policy HAProxy does not offer. */
const LIFO_PEER = 'sluice premium/free, adaptive LIFO';

type ClassOut = OpenLoopClass;
type GenOut = OpenLoopOut;
interface RunOut {
  gen: GenOut;
  backendMax: number;
  backendServed: number;
  backendOverload: number;
  /** Mean time a freed backend slot stood idle before the next request reached it, ms. */
  refillGapMs: number;
}

export const scenario: Scenario = {
  id: 'priority',
  title: `4. Priority under overload (fragile backend, premium + free at 3× and 10× capacity)`,
  async run(ctx: Ctx): Promise<Section> {
    const duration = ctx.quick ? 1 : 10;
    const queueTimeout = ctx.quick ? '500ms' : '2s';
    const rates = (mult: number) => {
      const total = mult * CAPACITY;
      const premiumRate = Math.round(total * PREMIUM_SHARE);
      return { total, premiumRate, freeRate: total - premiumRate };
    };
    const backend = await startBackend({ fragile: { slots: SLOTS, serviceMs: SERVICE_MS } });
    const notRun = (r: string) => async (): Promise<Peer> => {
      throw new Error(r);
    };
    const sluiceStart = (policy: string, name: string) => (ctx.sluice.ok ? () => startSluice(ctx.tmp, policy, name) : notRun(ctx.sluice.reason!));
    const slots = await startAll(ctx, [
      ['direct (no proxy)', async () => directPeer(backend, 'direct (no proxy)')],
      ['nginx max_conns (no queue)', () => startNginx(ctx.tmp, backend.port, { maxConns: SLOTS }, 'nginx-maxconns')],
      ['haproxy FIFO', () => startHaproxy(ctx.tmp, backend.port, { maxconn: SLOTS, timeoutQueue: queueTimeout }, 'haproxy-fifo')],
      ['haproxy priority-class', () => startHaproxy(ctx.tmp, backend.port, { maxconn: SLOTS, timeoutQueue: queueTimeout, priorityByTier: true }, 'haproxy-prio')],
      ['sluice one class (FIFO)', sluiceStart(oneClassPolicy(backend.port, { maxConcurrent: SLOTS, queue: { size: 10000, timeout: queueTimeout } }) + NO_ACCESS_LOG, 'sluice-fifo')],
      ['sluice premium/free', sluiceStart(priorityPolicy(backend.port, SLOTS, queueTimeout) + NO_ACCESS_LOG, 'sluice-prio')],
      [RESERVE_PEER, sluiceStart(priorityPolicy(backend.port, SLOTS, queueTimeout, 10000, 'priority under overload, premium reserve', 2) + NO_ACCESS_LOG, 'sluice-prio-reserve')],
      [LIFO_PEER, sluiceStart(priorityPolicy(backend.port, SLOTS, queueTimeout, 10000, 'priority under overload, adaptive LIFO').replace(/queue: \{ size: 10000, timeout: ([^ ]+) \}/g, 'queue: { size: 10000, timeout: $1, lifo: adaptive }') + NO_ACCESS_LOG, 'sluice-prio-lifo')],
    ], { quickOnly: ['haproxy priority-class', 'sluice premium/free'] });
    const genArgs = (port: number, mult = 3): string[] => [
      'bench/lib/openloop.mjs',
      '--url',
      `http://127.0.0.1:${port}/`,
      '--duration',
      String(duration),
      '--class',
      `premium=${rates(mult).premiumRate}`,
      '--class',
      `free=${rates(mult).freeRate}`,
      '--timeout-ms',
      '10000',
    ];
    const commands = [backend.command];
    const configs: Record<string, string> = {};
    for (const s of slots) {
      if (!s.peer) continue;
      commands.push(`# ${s.name}: ${s.peer.command}`);
      if (s.peer.config) configs[`priority / ${s.name}`] = s.peer.config;
    }
    for (const mult of [3, 10]) {
      commands.push(`# load at ${mult}x, per peer: ${shellLine('taskset', ['-c', String(LOADGEN_CORE), 'node', ...genArgs(0, mult)]).replace('127.0.0.1:0', '127.0.0.1:PORT')}`);
    }
    const body: string[] = [];
    const measure = async (mult: number): Promise<void> => {
      const { total, premiumRate, freeRate } = rates(mult);
      const notes: string[] = [];
      const active = slots.filter((s) => s.peer);
      const results = await interleaved(ctx.reps, active, async (s, rep): Promise<RunOut | undefined> => {
        if (s.notRun) return undefined;
        try {
          await backend.reset();
          const gen = await openLoop(genArgs(s.peer!.port, mult).slice(1), duration);
          const b = await backend.stats();
          const p = gen.classes.premium!;
          const f = gen.classes.free!;
          ctx.log(
            `    ${mult}x rep ${rep + 1} ${s.name}: premium ok ${fmt(p.okPerSec)}/s p99 ${fmt(p.p99ms ?? NaN, 0)} ms rej ${p.rejected}; free ok ${fmt(f.okPerSec)}/s p99 ${fmt(f.p99ms ?? NaN, 0)} ms rej ${f.rejected}; backend max ${b.maxConcurrency} overload ${b.overloadRejected} refill gap ${fmt(b.refillGapMs?.mean ?? NaN, 2)} ms`,
          );
          return { gen, backendMax: b.maxConcurrency, backendServed: b.served, backendOverload: b.overloadRejected, refillGapMs: b.refillGapMs?.mean ?? NaN };
        } catch (e) {
          s.notRun = `failed in rep ${rep + 1}: ${errMsg(e)}`;
          ctx.log(`    ${s.name}: ${s.notRun}`);
          return undefined;
        }
      });
      body.push(
        `### ${mult}× capacity`,
        '',
        `Fragile backend: ${SLOTS} slots × ${SERVICE_MS} ms = capacity ${CAPACITY} req/s; over its slots it answers 503 itself ("backend overload"). Open-loop load for ${duration} s per run: premium ${premiumRate} req/s (\`x-tier: premium\`) + free ${freeRate} req/s = ${total} req/s = ${mult}× capacity. Queue timeout ${queueTimeout} for every queueing peer; client timeout 10 s. Latency is measured from each request's scheduled send time, p50/p99 over successful (2xx) responses only; "ok req/s" is 2xx responses divided by the time from the first send to the last response (send phase plus queue drain). ${ctx.reps} interleaved runs; median (min–max).`,
        '"rejected" = 503/429 from the proxy (queue full / queue timeout / shed); "backend 503" = the fragile backend overloaded (the proxy let too many through); "errors" = other statuses (NGINX answers 502 when max_conns is reached), connection errors and client timeouts. "slot refill gap" = mean time a backend slot stood idle between the end of one response and the arrival of the next request (measured by the backend; under overload this is the proxy\'s refill latency, and what goodput loses to it).',
        `Same policy for every queueing peer: premium before free, FIFO within a class, no slot held for a class, no per-request logging (sluice runs with \`log: { access: false }\`, as NGINX has \`access_log off\` and HAProxy no \`log\` line). "${RESERVE_PEER}" adds \`reserve: 2\` for premium: 2 of the ${SLOTS} slots are premium's alone, so they stand idle whenever premium has fewer than 2 in flight (its cost is the goodput lost beside "sluice premium/free"). "${LIFO_PEER}" serves each class's queue newest first while it stands (\`lifo: adaptive\`, Facebook's "Fail at Scale"): a different policy from HAProxy's FIFO classes, shown for what it changes, not as the comparison.`,
        '',
        '| peer | class | ok % of sent | ok req/s | p50 ms | p99 ms | rejected | backend 503 | errors | backend max concurrency | slot refill gap ms | goodput % of capacity |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|',
      );
      for (const s of slots) {
        const rs = (results.get(s) ?? []).filter((x): x is RunOut => !!x);
        if (rs.length === 0) {
          body.push(`| ${s.name} | – | not run: ${(s.notRun ?? 'did not start').replace(/\|/g, '\\|')} | | | | | | | | | |`);
          continue;
        }
        const maxC = summarize(rs.map((r) => r.backendMax));
        for (const cls of ['premium', 'free']) {
          const c = rs.map((r) => r.gen.classes[cls]!);
          const other = (x: ClassOut): number => openLoopOther(x) - x.backendOverload;
          body.push(
            `| ${s.name}${s.notRun ? ` (incomplete: ${s.notRun.replace(/\|/g, '\\|')})` : ''} | ${cls} | ${fmtS(summarize(c.map((x) => (100 * x.ok) / x.sent)), 1)} | ${fmtS(summarize(c.map((x) => x.okPerSec)))} | ${fmtS(summarize(c.map((x) => x.p50ms ?? NaN)))} | ${fmtS(summarize(c.map((x) => x.p99ms ?? NaN)))} | ${fmtS(summarize(c.map((x) => x.rejected)))} | ${fmtS(summarize(c.map((x) => x.backendOverload)))} | ${fmtS(summarize(c.map(other)))} | ${cls === 'premium' ? fmtS(maxC) : ''} | ${cls === 'premium' ? fmtS(summarize(rs.map((r) => r.refillGapMs)), 2) : ''} | ${cls === 'premium' ? fmtS(summarize(rs.map((r) => (100 * (r.gen.classes.premium!.okPerSec + r.gen.classes.free!.okPerSec)) / CAPACITY)), 1) : ''} |`,
          );
        }
        // checks that say plainly what a peer did not do
        if (s.name !== 'direct (no proxy)' && maxC.max > SLOTS) notes.push(`- ${s.name}: the backend saw up to ${maxC.max} concurrent requests (> ${SLOTS} slots): the concurrency limit was not held.`);
        if (s.name === 'sluice premium/free') {
          const pp99 = summarize(rs.map((r) => r.gen.classes.premium!.p99ms ?? NaN)).median;
          const fp99 = summarize(rs.map((r) => r.gen.classes.free!.p99ms ?? NaN)).median;
          const pok = summarize(rs.map((r) => (100 * r.gen.classes.premium!.ok) / r.gen.classes.premium!.sent)).median;
          const h = results.get(slots.find((x) => x.name === 'haproxy priority-class')!)?.filter((x): x is RunOut => !!x) ?? [];
          const hp99 = summarize(h.map((r) => r.gen.classes.premium!.p99ms ?? NaN)).median;
          // Premium can get at most the whole backend: when its own rate exceeds the capacity, the share it
          // can succeed is capacity / rate (free then gets nothing, and free's p99 over its few successes says little).
          const fok = summarize(rs.map((r) => (100 * r.gen.classes.free!.ok) / r.gen.classes.free!.sent)).median;
          const canOk = Math.min(100, (100 * CAPACITY) / premiumRate);
          if (!(pok >= 0.9 * canOk) || !(pok > fok))
            notes.push(`- sluice premium/free: premium was **not** clearly prioritised (${fmt(pok, 1)}% of premium requests succeeded of at most ${fmt(canOk, 1)}% possible, free ${fmt(fok, 1)}%; premium p99 ${fmt(pp99)} ms vs free p99 ${fmt(fp99)} ms) — class scheduling missing or not effective in this build.`);
          else notes.push(`- sluice premium/free: ${fmt(pok, 1)}% of premium requests succeeded (at most ${fmt(canOk, 1)}% possible), free ${fmt(fok, 1)}%; premium p99 ${fmt(pp99)} ms vs free p99 ${fmt(fp99)} ms.`);
          if (Number.isFinite(hp99) && pp99 > 2 * hp99) notes.push(`- sluice premium p99 (${fmt(pp99)} ms) is more than twice HAProxy's priority-class premium p99 (${fmt(hp99)} ms).`);
        }
      }
      if (notes.length) body.push('', 'Checks:', '', ...notes);
      body.push('');
    };
    try {
      await measure(3);
      await measure(10);
      return { body, commands, configs };
    } finally {
      await stopAll(slots);
      await backend.server.stop();
    }
  },
};
