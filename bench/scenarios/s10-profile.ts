// Scenario 10: where sluice's CPU time goes. sluice (one class) runs under
// `node --cpu-prof` while wrk drives it as in scenario 1; the profile's self
// time is summed by where the code lives (sluice's own stages, http2-proxy,
// Node's HTTP/net/stream internals, native I/O, GC, OpenTelemetry).
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { oneClassPolicy, startBackend, startSluice } from '../lib/peers.js';
import { fmt } from '../lib/stats.js';
import { wrk, PROXY_CORE } from '../lib/tools.js';
import { REPO } from '../lib/peers.js';
import { run } from '../lib/proc.js';
import type { Ctx, Scenario, Section } from '../lib/types.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

function bucket(n: ProfileNode): string {
  const { url, functionName } = n.callFrame;
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(garbage collector)') return 'garbage collection';
  if (url.includes('node_modules/http2-proxy')) return 'http2-proxy';
  if (url.includes('node_modules/@opentelemetry')) return 'OpenTelemetry';
  if (url.includes('node_modules/')) return `dependency: ${/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1]}`;
  if (url.includes('/dist/')) {
    // sluice's own code, by pipeline stage (the folder under dist/).
    const stage = /\/dist\/([^/]+)\//.exec(url)?.[1];
    return `sluice: ${stage ?? path.basename(url, '.js')}`;
  }
  if (/^node:(_http_|net|http|internal\/(streams|stream_base|http|net))/.test(url)) return 'Node HTTP, net and streams (JS)';
  if (url.startsWith('node:')) return 'Node, other (JS)';
  if (url === '') return 'native (socket writes, header strings, V8)';
  return 'other';
}

/** Sums self time by bucket over the samples taken at or after `fromUs` (V8's monotonic microseconds). */
export function summarizeProfile(p: Profile, fromUs = 0): { rows: [string, number][]; top: [string, number][]; busyMs: number } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const buckets = new Map<string, number>();
  const fns = new Map<string, number>();
  let busy = 0;
  let t = p.startTime;
  p.samples.forEach((id, i) => {
    const n = byId.get(id)!;
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (t < fromUs) return;
    const b = bucket(n);
    buckets.set(b, (buckets.get(b) ?? 0) + dt);
    if (b === 'idle') return;
    busy += dt;
    const cf = n.callFrame;
    const key = `${cf.functionName || '(anonymous)'} ${cf.url.replace(/.*node_modules\//, '').replace(/.*\/dist\//, 'dist/')}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
    fns.set(key, (fns.get(key) ?? 0) + dt);
  });
  const pct = (v: number): number => (100 * v) / busy;
  return {
    rows: [...buckets].filter(([b]) => b !== 'idle').map(([b, v]): [string, number] => [b, pct(v)]).sort((a, b) => b[1] - a[1]),
    top: [...fns].map(([k, v]): [string, number] => [k, pct(v)]).sort((a, b) => b[1] - a[1]).slice(0, 12),
    busyMs: busy / 1000,
  };
}

export const scenario: Scenario = {
  id: 'profile',
  title: '10. Where the time goes (CPU profile of sluice under pass-through load)',
  async run(ctx: Ctx): Promise<Section> {
    if (!ctx.sluice.ok) return { body: [`not run: ${ctx.sluice.reason}`], commands: [] };
    const duration = ctx.quick ? 2 : 8;
    const dir = path.join(ctx.tmp, 'cpu-profile');
    mkdirSync(dir, { recursive: true });
    const backend = await startBackend();
    const commands = [backend.command];
    const policy = oneClassPolicy(backend.port);
    try {
      // --cpu-prof is not allowed in NODE_OPTIONS, so it goes on the command line.
      const peer = await startSluice(ctx.tmp, policy, 'sluice-profiled', {}, ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
      commands.push(peer.command);
      let rps = NaN;
      let fromUs = 0;
      try {
        await wrk({ url: `http://127.0.0.1:${peer.port}/`, connections: 64, durationS: 1 }); // warm-up (JIT), left out below
        // V8's profile clock and hrtime are both the monotonic clock.
        fromUs = Number(process.hrtime.bigint() / 1000n);
        const r = await wrk({ url: `http://127.0.0.1:${peer.port}/`, connections: 64, durationS: duration });
        rps = r.rps;
        commands.push(r.command);
      } finally {
        await peer.stop();
      }
      const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
      if (!file) return { body: ['not run: the profiled sluice wrote no .cpuprofile (it must exit cleanly on SIGTERM)'], commands };
      const s = summarizeProfile(JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as Profile, fromUs);
      // The scheduler alone, outside any I/O: cost per enqueue+dequeue with 10,000 waiters held.
      const ops = await run('node', ['--expose-gc', '--import', 'tsx', 'bench/scheduler-ops.ts'], { core: PROXY_CORE, cwd: REPO, timeoutMs: 120_000 });
      commands.push(`taskset -c ${PROXY_CORE} node --expose-gc --import tsx bench/scheduler-ops.ts`);
      let opsLine = `scheduler micro-benchmark failed: ${ops.stderr.slice(0, 300)}`;
      try {
        const o = JSON.parse(ops.stdout.trim().split('\n').pop() ?? '') as { nsPerEnqueueDequeue: number; heapPerWaiterBytes: number };
        opsLine = `The scheduler alone (\`bench/scheduler-ops.ts\`, no I/O): ${fmt(o.nsPerEnqueueDequeue / 1000, 2)} µs per enqueue + dequeue (a release that dispatches a waiter, plus a new arrival) with 10,000 requests waiting in three classes, and ${fmt(o.heapPerWaiterBytes, 0)} bytes of heap per waiting request.`;
      } catch {
        // keep the failure line
      }
      return {
        body: [
          `sluice with one class under wrk (64 connections, ${duration} s after a 1 s warm-up; ${fmt(rps, 0)} req/s while profiled). Self time of the busy (non-idle) samples taken during the measured run (start-up and warm-up left out), ${fmt(s.busyMs, 0)} ms in all; \`sluice: X\` is code in src/X/:`,
          '',
          '| where | share of busy CPU |',
          '|---|---|',
          ...s.rows.filter(([, v]) => v >= 0.1).map(([b, v]) => `| ${b} | ${fmt(v, 1)}% |`),
          '',
          opsLine,
          '',
          'Hottest functions (self time):',
          '',
          '| function | share |',
          '|---|---|',
          ...s.top.map(([k, v]) => `| \`${k.replace(/\|/g, '\\|')}\` | ${fmt(v, 1)}% |`),
        ],
        commands,
        configs: { 'profile / sluice': policy },
      };
    } finally {
      await backend.server.stop();
    }
  },
};
