// Scenario 6: queue scale. 10,000 concurrent slow requests held in queues in
// front of a backend with few slots: proxy RSS, CPU, and event-loop lag seen
// from outside (latency of a health probe on the admin/monitor port every 100 ms).
import http from 'node:http';
import { REPO, oneClassPolicy, startBackend, startHaproxy, startSluice, type Peer } from '../lib/peers.js';
import { ProcSampler, rssBytes, processTree, run, shellLine, sleep } from '../lib/proc.js';
import { fmt, fmtS, MiB, summarize } from '../lib/stats.js';
import { startAll, stopAll } from '../lib/throughput.js';
import { LOADGEN_CORE, percentile } from '../lib/tools.js';
import { errMsg, interleaved, type Ctx, type Scenario, type Section } from '../lib/types.js';

const N = 10_000;
const SLOTS = 4;
const SERVICE_MS = 1000;

function probe(port: number): Promise<number> {
  const t = performance.now();
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(performance.now() - t));
    });
    req.setTimeout(5000, () => req.destroy());
    req.on('error', () => resolve(NaN));
  });
}

interface Out {
  idleRssMiB: number;
  peakRssMiB: number;
  cpuS: number;
  lagP50: number;
  lagP99: number;
  lagMax: number;
  probeFailures: number;
  client: { opened: number; connectErrors: number; responses: Record<string, number>; pendingAtEnd: number };
}

export const scenario: Scenario = {
  id: 'queue-scale',
  title: '6. Queue scale (10,000 concurrent slow requests held in queues)',
  async run(ctx: Ctx): Promise<Section> {
    const holdS = ctx.quick ? 2 : 15;
    const backend = await startBackend({ fragile: { slots: SLOTS, serviceMs: SERVICE_MS } });
    const notRun = (r: string) => async (): Promise<Peer> => {
      throw new Error(r);
    };
    // each run gets a freshly started proxy (so "idle RSS" is a fresh process and
    // nothing is left queued from the previous run); this first start only
    // validates the config and records the command line
    const starters: Record<string, () => Promise<Peer>> = {
      haproxy: () => startHaproxy(ctx.tmp, backend.port, { maxconn: SLOTS, timeoutQueue: '120s', globalMaxconn: 9900, monitor: true }, 'haproxy-queue'),
      sluice: ctx.sluice.ok
        ? () => startSluice(ctx.tmp, oneClassPolicy(backend.port, { maxConcurrent: SLOTS, queue: { size: 20000, timeout: '120s' } }), 'sluice-queue')
        : notRun(ctx.sluice.reason!),
    };
    const slots = await startAll(ctx, Object.entries(starters));
    const clientArgs = (port: number): string[] => ['bench/lib/holdclient.mjs', '--port', String(port), '--n', String(N), '--hold-s', String(holdS)];
    const commands = [backend.command];
    const configs: Record<string, string> = {};
    for (const s of slots) {
      if (!s.peer) continue;
      commands.push(`# ${s.name}: ${s.peer.command}`);
      if (s.peer.config) configs[`queue scale / ${s.name}`] = s.peer.config;
    }
    commands.push(`# load, per peer: ${shellLine('taskset', ['-c', String(LOADGEN_CORE), 'node', ...clientArgs(0)]).replace('--port 0', '--port PORT')}`);
    try {
      await stopAll(slots);
      const res = await interleaved(ctx.reps, slots, async (s, rep): Promise<Out | undefined> => {
        if (!s.peer || s.notRun) return undefined;
        let peer: Peer | undefined;
        try {
          peer = await starters[s.name]!();
          s.peer = peer;
          await backend.reset();
          await sleep(300);
          const idle = rssBytes(processTree(s.peer.pid)) / MiB;
          const sampler = new ProcSampler(s.peer.pid, 100);
          const lags: number[] = [];
          let failures = 0;
          let stop = false;
          const prober = (async () => {
            while (!stop) {
              const l = await probe(s.peer!.admin!);
              if (Number.isFinite(l)) lags.push(l);
              else failures++;
              await sleep(100);
            }
          })();
          const r = await run('node', clientArgs(s.peer.port), { core: LOADGEN_CORE, timeoutMs: (holdS + 30) * 1000, cwd: REPO });
          stop = true;
          await prober;
          const p = sampler.stop();
          const line = r.stdout.trim().split('\n').pop() ?? '';
          if (!line.startsWith('{')) throw new Error(`hold client failed (${r.code}): ${r.stderr.slice(0, 300)}`);
          const sorted = Float64Array.from(lags).sort();
          const out: Out = {
            idleRssMiB: idle,
            peakRssMiB: p.peakRss / MiB,
            cpuS: p.cpuSeconds,
            lagP50: percentile(sorted, 0.5),
            lagP99: percentile(sorted, 0.99),
            lagMax: sorted.length ? sorted[sorted.length - 1]! : NaN,
            probeFailures: failures,
            client: JSON.parse(line),
          };
          ctx.log(`    rep ${rep + 1} ${s.name}: rss ${fmt(idle, 1)} -> ${fmt(out.peakRssMiB, 1)} MiB, probe p99 ${fmt(out.lagP99, 1)} ms max ${fmt(out.lagMax, 1)} ms, opened ${out.client.opened}, pending ${out.client.pendingAtEnd}`);
          return out;
        } catch (e) {
          s.notRun = `failed in rep ${rep + 1}: ${errMsg(e)}`;
          ctx.log(`    ${s.name}: ${s.notRun}`);
          return undefined;
        } finally {
          await peer?.stop();
        }
      });
      const body = [
        `Backend: ${SLOTS} slots × ${SERVICE_MS} ms; each proxy allows ${SLOTS} in flight upstream and queues the rest (queue timeout 120 s). A client process opens ${N.toLocaleString('en-US')} concurrent requests (one connection each) and holds them for ${holdS} s. Meanwhile the runner probes \`GET /healthz\` on the proxy's admin port (sluice) or a \`monitor-uri\` frontend (HAProxy) every 100 ms: its latency is the externally visible event-loop lag. Each run starts a fresh proxy process (idle RSS is measured just before the load). \"connections opened\" counts TCP connects the client saw complete within the hold time; \"still pending\" is requests without a response when the hold ended. ${ctx.reps} interleaved runs.`,
        'HAProxy\'s global maxconn is 9,900 here: with the 20,000 file-descriptor limit it cannot go higher (about 2 descriptors per connection), so up to 100 of the 10,000 connections wait in the kernel\'s accept backlog instead of its queue. NGINX is not a peer: open-source NGINX cannot queue.',
        '',
        '| peer | connections opened | still pending at end | idle RSS MiB | peak RSS MiB | KiB per held request | CPU s | probe p50 ms | probe p99 ms | probe max ms | probe failures |',
        '|---|---|---|---|---|---|---|---|---|---|---|',
      ];
      for (const s of slots) {
        const rs = (res.get(s) ?? []).filter((x): x is Out => !!x);
        if (rs.length === 0) {
          body.push(`| ${s.name} | not run: ${(s.notRun ?? 'did not start').replace(/\|/g, '\\|')} | | | | | | | | | |`);
          continue;
        }
        const S = (f: (o: Out) => number, d = 0): string => fmtS(summarize(rs.map(f)), d);
        body.push(
          `| ${s.name}${s.notRun ? ` (incomplete: ${s.notRun.replace(/\|/g, '\\|')})` : ''} | ${S((o) => o.client.opened)} | ${S((o) => o.client.pendingAtEnd)} | ${S((o) => o.idleRssMiB, 1)} | ${S((o) => o.peakRssMiB, 1)} | ${S((o) => ((o.peakRssMiB - o.idleRssMiB) * 1024) / Math.max(1, o.client.pendingAtEnd), 1)} | ${S((o) => o.cpuS, 2)} | ${S((o) => o.lagP50, 1)} | ${S((o) => o.lagP99, 1)} | ${S((o) => o.lagMax, 1)} | ${S((o) => o.probeFailures)} |`,
        );
      }
      return { body, commands, configs };
    } finally {
      await stopAll(slots);
      await backend.server.stop();
    }
  },
};
