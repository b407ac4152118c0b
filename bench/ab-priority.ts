// Same-run A/B of scenario 4 (priority under overload) between sluice builds
// and/or policy variants, beside HAProxy priority classes. Interleaved reps.
//
//   node --import tsx bench/ab-priority.ts --mult 3,10 --reps 4 --duration 10 \
//     --sluice A=/tmp/sluice-A/dist/cli.js --sluice B=dist/cli.js [--policy B=noreserve] [--no-haproxy]
//
// Prints one line per run and a median table at the end. Not part of `npm run bench`.
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO, priorityPolicy, startBackend, startHaproxy, type Peer } from './lib/peers.js';
import { cpuSeconds, processTree, startServer } from './lib/proc.js';
import { summarize, fmtS } from './lib/stats.js';
import { PROXY_CORE, openLoop, type OpenLoopOut } from './lib/tools.js';

const argv = process.argv.slice(2);
const all = (n: string): string[] => argv.flatMap((a, i) => (a === `--${n}` ? [argv[i + 1]!] : []));
const one = (n: string, d: string): string => all(n)[0] ?? d;
const mults = one('mult', '3,10').split(',').map(Number);
const reps = Number(one('reps', '4'));
const duration = Number(one('duration', '10'));
const queueTimeout = one('queue-timeout', '2s');
const SLOTS = 8;
const CAPACITY = SLOTS * 50;
const policies = new Map(all('policy').map((s) => s.split('=') as [string, string]));

/** The policy of scenario 4's "sluice premium/free" row, or a variant of it. */
function policyFor(variant: string | undefined, port: number): string {
  const nolog = 'log: { access: false }\n';
  switch (variant) {
    case undefined:
      return priorityPolicy(port, SLOTS, queueTimeout) + nolog;
    case 'reserve':
      return priorityPolicy(port, SLOTS, queueTimeout, 10000, 'reserve', 2) + nolog;
    case 'accesslog':
      return priorityPolicy(port, SLOTS, queueTimeout);
    case 'old': // scenario 4's policy before the peers were given the same one: premium reserve 2, access log on
      return priorityPolicy(port, SLOTS, queueTimeout, 10000, 'old', 2);
    case 'lifo':
      return priorityPolicy(port, SLOTS, queueTimeout).replace(/queue: \{ size: 10000, timeout: ([^ ]+) \}/g, 'queue: { size: 10000, timeout: $1, lifo: adaptive }') + nolog;
    default:
      throw new Error(`unknown policy variant ${variant}`);
  }
}

async function startSluiceAt(tmp: string, cli: string, policy: string, name: string): Promise<Peer> {
  const dir = path.join(tmp, name);
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'policy.yaml');
  writeFileSync(file, policy);
  const server = await startServer({
    name,
    cmd: 'node',
    args: [path.resolve(REPO, cli), 'serve', '--config', file, '--port', '0', '--admin-port', '0'],
    cwd: REPO,
    ready: /sluice listening on http:\/\/[^\s]+:(\d+) admin http:\/\/[^\s]+:(\d+)/,
    core: PROXY_CORE,
  });
  return { name, port: server.port, pid: server.pid, command: '', server, stop: server.stop };
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sluice-ab-'));
const backend = await startBackend({ fragile: { slots: SLOTS, serviceMs: 20 } });
const peers: Peer[] = [];
if (!argv.includes('--no-haproxy')) peers.push(await startHaproxy(tmp, backend.port, { maxconn: SLOTS, timeoutQueue: queueTimeout, priorityByTier: true }, 'haproxy'));
for (const spec of all('sluice')) {
  const [name, cli] = spec.split('=') as [string, string];
  peers.push(await startSluiceAt(tmp, cli, policyFor(policies.get(name), backend.port), name));
}
type Row = { premP99: number; premP50: number; premOk: number; goodput: number; freeOk: number; backendMax: number; gapMean: number; gapP99: number; cpuUs: number };
const results = new Map<string, Row[]>();
try {
  for (let rep = 0; rep < reps; rep++) {
    for (const mult of mults) {
      for (const p of peers) {
        const total = mult * CAPACITY;
        const prem = Math.round(total / 4);
        await backend.reset();
        const pids = processTree(p.pid);
        const cpu0 = cpuSeconds(pids);
        const out: OpenLoopOut = await openLoop(
          ['--url', `http://127.0.0.1:${p.port}/`, '--duration', String(duration), '--class', `premium=${prem}`, '--class', `free=${total - prem}`, '--timeout-ms', '10000'],
          duration,
        );
        const cpu = cpuSeconds(pids) - cpu0;
        const b = (await backend.stats()) as { maxConcurrency: number; refillGapMs: { mean: number; p99: number } };
        const pr = out.classes.premium!;
        const fr = out.classes.free!;
        const row: Row = {
          premP99: pr.p99ms ?? NaN,
          premP50: pr.p50ms ?? NaN,
          premOk: (100 * pr.ok) / pr.sent,
          goodput: (100 * (pr.okPerSec + fr.okPerSec)) / CAPACITY,
          freeOk: fr.ok,
          backendMax: b.maxConcurrency,
          gapMean: b.refillGapMs.mean,
          gapP99: b.refillGapMs.p99,
          cpuUs: (1e6 * cpu) / (pr.sent + fr.sent),
        };
        const key = `${mult}x ${p.name}`;
        if (!results.has(key)) results.set(key, []);
        results.get(key)!.push(row);
        console.log(`rep ${rep + 1} ${key}: prem p50 ${row.premP50.toFixed(0)} p99 ${row.premP99.toFixed(0)} ok ${row.premOk.toFixed(1)}% goodput ${row.goodput.toFixed(1)}% window ${out.windowS.toFixed(2)}s conns ${(b as { connections?: number }).connections} gap mean ${row.gapMean} p99 ${row.gapP99} ms cpu ${row.cpuUs.toFixed(0)} µs/req backend max ${row.backendMax} other ${JSON.stringify({ pe: pr.errors, pt: pr.timeouts, po: pr.backendOverload, fe: fr.errors, ft: fr.timeouts, fo: fr.backendOverload })}`);
      }
    }
  }
} finally {
  for (const p of peers) await p.stop();
  await backend.server.stop();
}
console.log('\n| run | premium p50 | premium p99 | premium ok % | goodput % | backend max | refill gap mean ms | gap p99 | proxy CPU µs/req |\n|---|---|---|---|---|---|---|---|---|');
for (const [k, rows] of results) {
  const s = (f: (r: Row) => number, d = 0) => fmtS(summarize(rows.map(f)), d);
  console.log(`| ${k} | ${s((r) => r.premP50)} | ${s((r) => r.premP99)} | ${s((r) => r.premOk, 1)} | ${s((r) => r.goodput, 1)} | ${s((r) => r.backendMax)} | ${s((r) => r.gapMean, 2)} | ${s((r) => r.gapP99, 1)} | ${s((r) => r.cpuUs)} |`);
}
process.exit(0);
