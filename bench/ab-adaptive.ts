// Same-run A/B of scenario 12 (adaptive concurrency) between sluice builds:
// the same phases as the scenario, interleaved, plus a trace of the limit.
//
//   node --import tsx bench/ab-adaptive.ts --reps 3 --sluice A=/tmp/a/dist/cli.js --sluice B=dist/cli.js
//
// Not part of `npm run bench`.
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO } from './lib/peers.js';
import { startServer } from './lib/proc.js';
import { fmtS, summarize } from './lib/stats.js';
import { PROXY_CORE, openLoop } from './lib/tools.js';
import { adaptivePolicy } from './scenarios/s12-adaptive.js';

const argv = process.argv.slice(2);
const all = (n: string): string[] => argv.flatMap((a, i) => (a === `--${n}` ? [argv[i + 1]!] : []));
const reps = Number(all('reps')[0] ?? '3');
const extra = all('policy-extra')[0] ?? '';
const KNEE = 8;
const CAPACITY = KNEE * 50;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tmp = mkdtempSync(path.join(os.tmpdir(), 'sluice-ab12-'));
const backend = await startServer({ name: 'knee', cmd: 'node', args: ['bench/lib/knee-backend.mjs', '--port', '0', '--knee', '8', '--service-ms', '20'], cwd: REPO, ready: /backend listening (\d+)/ });
const b = `http://127.0.0.1:${backend.port}`;
const policy = adaptivePolicy(b, extra);
const gen = (port: number, s: number, p: number, f: number) => ['--url', `http://127.0.0.1:${port}/`, '--duration', String(s), '--class', `premium=${p}`, ...(f > 0 ? ['--class', `free=${f}`] : []), '--timeout-ms', '10000'];
type Rep = { idle: number; p99: number; ratio: number; max: number; p95: number; goodput: number; lim5: number; follow: number; after: number };
const res = new Map<string, Rep[]>();
for (let rep = 0; rep < reps; rep++) {
  for (const spec of all('sluice')) {
    const [name, cli] = spec.split('=') as [string, string];
    const dir = path.join(tmp, `${name}-${rep}`);
    mkdirSync(dir, { recursive: true });
    const knobs = new Map(all('knobs').map((k) => [k.slice(0, k.indexOf('=')), k.slice(k.indexOf('=') + 1)])).get(name);
    writeFileSync(path.join(dir, 'p.yaml'), knobs ? policy.replace('    maxConcurrent: auto\n', `    maxConcurrent: auto\n    adaptive: { ${knobs} }\n`) : policy);
    const s = await startServer({ name, cmd: 'node', args: [path.resolve(REPO, cli), 'serve', '--config', path.join(dir, 'p.yaml'), '--port', '0', '--admin-port', '0'], cwd: REPO, ready: /sluice listening on http:\/\/[^\s]+:(\d+) admin http:\/\/[^\s]+:(\d+)/, core: PROXY_CORE });
    const admin = Number(s.match[2]);
    const status = async () => ((await (await fetch(`http://127.0.0.1:${admin}/status`)).json()) as { upstreams: { maxConcurrent: number; inFlight: number; adaptive?: { minRttMs: number; sampleRttMs: number; phase: string } }[] }).upstreams[0]!;
    const trace: string[] = [];
    let tracing = true;
    const tracer = (async () => {
      while (tracing) {
        const u = await status().catch(() => undefined);
        if (!u) break;
        trace.push(`${u.maxConcurrent}${u.adaptive?.phase === 'probe' ? 'p' : ''}${argv.includes('--rtt') ? `(${u.adaptive?.minRttMs?.toFixed(0)}/${u.adaptive?.sampleRttMs?.toFixed(0)})` : ''}`);
        await sleep(250);
      }
    })();
    const stats = async () => (await (await fetch(`${b}/__stats`)).json()) as { served: number; maxSince: number; p95Since: number };
    try {
      await fetch(`${b}/__knee?n=8`, { method: 'POST' });
      const idle = await openLoop(gen(s.port, 2, 20, 0), 2);
      trace.push('|');
      const t0 = performance.now();
      const loadP = openLoop(gen(s.port, 12, 300, 900), 12);
      await sleep(5000);
      await fetch(`${b}/__mark`, { method: 'POST' });
      const served0 = (await stats()).served;
      const lim5 = (await status()).maxConcurrent;
      trace.push('|');
      await sleep(7000 - 100);
      const st = await stats();
      const goodput = (100 * (st.served - served0)) / (((performance.now() - t0) / 1000 - 5) * CAPACITY);
      const load = await loadP;
      trace.push('|');
      const halfP = openLoop(gen(s.port, 8, 300, 900), 8);
      await sleep(2000);
      await fetch(`${b}/__knee?n=4`, { method: 'POST' });
      trace.push('/');
      const th = performance.now();
      let follow = NaN;
      while (performance.now() - th < 5500) {
        if ((await status()).maxConcurrent <= 6) {
          follow = performance.now() - th;
          break;
        }
        await sleep(50);
      }
      await sleep(Math.max(0, 3000 - (performance.now() - th)));
      const after = (await status()).maxConcurrent;
      await halfP;
      await fetch(`${b}/__knee?n=8`, { method: 'POST' });
      const r: Rep = { idle: idle.classes.premium!.p99ms!, p99: load.classes.premium!.p99ms!, ratio: load.classes.premium!.p99ms! / idle.classes.premium!.p99ms!, max: st.maxSince, p95: st.p95Since, goodput, lim5, follow, after };
      if (!res.has(name)) res.set(name, []);
      res.get(name)!.push(r);
      console.log(`rep ${rep + 1} ${name}: idle p99 ${r.idle.toFixed(0)} overload p99 ${r.p99.toFixed(0)} (${r.ratio.toFixed(2)}x) free p99 ${load.classes.free!.p99ms?.toFixed(0)} max ${r.max} p95 ${r.p95} goodput ${r.goodput.toFixed(1)}% lim@5s ${lim5} follow ${follow.toFixed(0)} ms after ${after}`);
      console.log(`  limit trace (250 ms): ${trace.join(' ')}`);
    } finally {
      tracing = false;
      await tracer.catch(() => {});
      await s.stop();
    }
  }
}
await backend.stop();
console.log('\n| build | idle p99 | overload p99 | ratio | max | p95 | goodput | limit@5s | follow ms | after |\n|---|---|---|---|---|---|---|---|---|---|');
for (const [k, rs] of res) {
  const m = (f: (r: Rep) => number, d = 0) => fmtS(summarize(rs.map(f)), d);
  console.log(`| ${k} | ${m((r) => r.idle)} | ${m((r) => r.p99)} | ${m((r) => r.ratio, 2)} | ${m((r) => r.max)} | ${m((r) => r.p95)} | ${m((r) => r.goodput, 1)} | ${m((r) => r.lim5)} | ${m((r) => r.follow)} | ${m((r) => r.after)} |`);
}
process.exit(0);
