// sluice benchmark runner: `npm run bench` (full) or `npm run bench -- --quick`.
// Options: --quick, --only a,b (scenario ids), --reps N, --out FILE.
// Writes docs/benchmarks.md (generated; never edit by hand).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { killAll } from './lib/proc.js';
import { REPO, SLUICE_CLI } from './lib/peers.js';
import { LOADGEN_CORE, PROXY_CORE } from './lib/tools.js';
import { errMsg, type Ctx, type Scenario, type Section } from './lib/types.js';
import { scenario as s1 } from './scenarios/s1-passthrough.js';
import { scenario as s2 } from './scenarios/s2-large-bodies.js';
import { scenario as s3 } from './scenarios/s3-http2.js';
import { scenario as s4 } from './scenarios/s4-priority-overload.js';
import { scenario as s5 } from './scenarios/s5-bandwidth.js';
import { scenario as s6 } from './scenarios/s6-queue-scale.js';
import { scenario as s7 } from './scenarios/s7-ratelimit.js';
import { scenario as s8 } from './scenarios/s8-memory.js';
import { scenario as s9 } from './scenarios/s9-soak.js';
import { scenario as s10 } from './scenarios/s10-profile.js';
import { scenario as s11 } from './scenarios/s11-gateway.js';
import { scenario as s12 } from './scenarios/s12-adaptive.js';
import { scenario as s13 } from './scenarios/s13-tls.js';
import { scenario as s14 } from './scenarios/s14-slow-clients.js';
import { scenario as s15 } from './scenarios/s15-cluster.js';

const SCENARIOS: Scenario[] = [s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15];

/** What `--quick` changes (shown in the report header; keep in step with the scenarios). */
const QUICK_TRIMS = [
  'Quick mode trims, to finish in under 3 minutes on 2 cores (drop `--quick` for the real figures):',
  '- runs of 1 s instead of 10 s, without warm-ups (1–3);',
  '- fewer peers (the others are listed as "skipped in quick mode"): pass-through keeps direct, NGINX, HAProxy, bare http2-proxy and the three sluice rows (the #12 targets compare them); large bodies and HTTP/2 keep NGINX and sluice; priority keeps HAProxy priority-class and sluice premium/free; bandwidth keeps sluice only (no NGINX `limit_rate` beside it);',
  '- bandwidth: one 6 MB download instead of 20 MB, eight 1.5 MB downloads instead of 8 × 6 MiB (the start burst, 1/10 s of the rate, weighs more in short downloads);',
  '- queue scale: connections held 1 s instead of 15 s; rate limits: 2 s of offered load instead of 10 s; shaped-download memory: 2 s per run instead of 15 s, the 1,000,000-key run once instead of 3 times;',
  '- soak: 25 s instead of 180 s, reloads every 2 s instead of 5 s.',
];

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const quick = argv.includes('--quick');
const reps = Math.max(3, Number(opt('reps') ?? (quick ? 3 : 5)));
const only = opt('only')?.split(',');
const out = path.resolve(REPO, opt('out') ?? 'docs/benchmarks.md');

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (e) {
    const x = e as { stdout?: string; stderr?: string };
    return `${x.stdout ?? ''}${x.stderr ?? ''}`.trim() || `unavailable (${errMsg(e)})`;
  }
}

function firstLine(s: string): string {
  return s.split('\n').find((l) => l.trim()) ?? s;
}

function pkgVersion(name: string): string {
  try {
    return JSON.parse(readFileSync(path.join(REPO, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return 'not installed';
  }
}

function machine(): string[] {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? 'unknown';
  const mhz = /cpu MHz\s*:\s*(.*)/.exec(cpuinfo)?.[1];
  return [
    `- CPU: ${model}${mhz ? ` (${Math.round(Number(mhz))} MHz reported)` : ''}, ${os.cpus().length} cores online (\`nproc\`: ${sh('nproc', [])})`,
    `- Memory: ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB; kernel ${os.release()}; ${firstLine(sh('sh', ['-c', '. /etc/os-release && echo "$PRETTY_NAME"']))}`,
    `- Open-file limit: ${sh('sh', ['-c', 'ulimit -n'])}`,
  ];
}

function versions(): string[] {
  let sluiceVer = 'unknown';
  try {
    sluiceVer = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')).version;
  } catch {
    /* */
  }
  const commit = sh('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD']);
  return [
    `- node ${process.version}`,
    `- sluice ${sluiceVer} (bench commit ${commit}; CLI ${path.relative(REPO, SLUICE_CLI)} ${existsSync(SLUICE_CLI) ? 'present' : 'missing'}${process.env.SLUICE_CLI ? ', from SLUICE_CLI: a build other than this checkout' : ''})`,
    `- ${firstLine(sh('sh', ['-c', 'nginx -v 2>&1']))}`,
    `- ${firstLine(sh('haproxy', ['-v']))}`,
    `- ${firstLine(sh('wrk', ['-v']))}`,
    `- h2load ${firstLine(sh('h2load', ['--version']))}`,
    `- ${firstLine(sh('redis-server', ['--version']))}`,
    `- npm http-proxy ${pkgVersion('http-proxy')}, http2-proxy ${pkgVersion('http2-proxy')}, tsx ${pkgVersion('tsx')}`,
  ];
}

/** Newest modification time (ms) of the files under dir. */
function newestMtime(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) t = Math.max(t, statSync(path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)).mtimeMs);
  }
  return t;
}

/** Make sure dist/cli.js exists and is not older than src/: build it if src/ and tsconfig.json are there. */
function ensureSluice(log: (m: string) => void): { ok: boolean; reason?: string } {
  const src = path.join(REPO, 'src');
  const stale = !process.env.SLUICE_CLI && existsSync(SLUICE_CLI) && existsSync(src) && newestMtime(src) > statSync(SLUICE_CLI).mtimeMs;
  if (existsSync(SLUICE_CLI) && !stale) return { ok: true };
  if (stale) log('dist/ is older than src/: rebuilding');
  if (process.env.SLUICE_CLI) return { ok: false, reason: `SLUICE_CLI=${process.env.SLUICE_CLI} does not exist` };
  if (!existsSync(path.join(REPO, 'tsconfig.json')) || !existsSync(path.join(REPO, 'src'))) {
    return { ok: false, reason: 'sluice is not built and there is no src/ + tsconfig.json to build it from' };
  }
  log('building sluice (npm run build)…');
  try {
    execFileSync('npm', ['run', 'build'], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const x = e as { stdout?: Buffer; stderr?: Buffer };
    const why = `npm run build failed: ${`${x.stdout ?? ''}${x.stderr ?? ''}`.replace(/\s+/g, ' ').slice(0, 300)}`;
    if (stale) {
      log(`${why}; benchmarking the existing (older) dist/ build`);
      return { ok: true };
    }
    return { ok: false, reason: why };
  }
  return existsSync(SLUICE_CLI) ? { ok: true } : { ok: false, reason: 'npm run build did not produce dist/cli.js' };
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const load0 = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const log = (m: string): void => {
    process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${m}\n`);
  };
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-'));
  const ctx: Ctx = { quick, reps, tmp, sluice: ensureSluice(log), log };
  if (!ctx.sluice.ok) log(`sluice unavailable: ${ctx.sluice.reason}`);
  const chosen = SCENARIOS.filter((s) => !only || only.includes(s.id));
  const sections: { s: Scenario; r: Section }[] = [];
  for (const s of chosen) {
    log(`scenario ${s.title}`);
    let r: Section;
    try {
      r = await s.run(ctx);
    } catch (e) {
      log(`  scenario failed: ${errMsg(e)}`);
      r = { body: [`not run: the scenario failed: ${errMsg(e)}`], commands: [] };
    }
    sections.push({ s, r });
    killAll();
  }
  const cmdline = `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`;
  const md: string[] = [
    '# sluice benchmarks',
    '',
    '<!-- GENERATED by bench/run.ts — do not edit by hand; re-run `npm run bench` instead. -->',
    '',
    `Generated ${new Date().toISOString()} by \`${cmdline}\` in ${((Date.now() - t0) / 1000).toFixed(0)} s${quick ? ' (**quick mode**: short runs, treat as a smoke test, not as results)' : ''}.`,
    `Every figure is the median of ${reps} interleaved runs (peer A, B, C, A, B, C, …) with min–max in parentheses, except where a section says otherwise (the soak is one long run).`,
    '',
    ...(quick ? [...QUICK_TRIMS, ''] : []),
    ...(os.loadavg()[0]! > 1
      ? [
          `> **Warning:** the machine was busy when this run started (1-minute load average ${os.loadavg()[0]!.toFixed(2)} on ${os.cpus().length} cores): other processes competed for the CPU, so absolute figures and target verdicts below are not representative. Re-run on an idle machine.`,
          '',
        ]
      : []),
    '## Machine',
    '',
    ...machine(),
    `- Pinning: every proxy runs under \`taskset -c ${PROXY_CORE}\`, the load generator (wrk, h2load, the Node open-loop generator) under \`taskset -c ${LOADGEN_CORE}\`. The Node backend is not pinned (the machine has only 2 cores, so it shares them with both). NGINX runs one worker (\`master_process off\`), HAProxy one thread (\`nbthread 1\`); Node peers are single-threaded.`,
    '- All traffic is on 127.0.0.1. Generated configs live in a fresh temp directory, shown as `$BENCH_TMP`.',
    `- Load average when the run started: ${load0}; when it ended: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} (other work on the machine skews the figures).`,
    '',
    '## Versions',
    '',
    ...versions(),
    '',
    '## How to reproduce',
    '',
    '```sh',
    'bash bench/setup.sh      # apt-get install wrk nghttp2-client nginx haproxy redis-server; npm ci',
    cmdline,
    '```',
    '',
  ];
  const configs: Record<string, string> = {};
  for (const sc of SCENARIOS) {
    const done = sections.find((x) => x.s === sc);
    if (!done) {
      md.push(`## ${sc.title}`, '', `not run: not selected (\`--only ${only?.join(',')}\`)`, '');
      continue;
    }
    const r = done.r;
    md.push(`## ${sc.title}`, '', ...r.body, '');
    if (r.commands.length) md.push('<details><summary>Exact commands</summary>', '', '```sh', ...r.commands, '```', '', '</details>', '');
    Object.assign(configs, r.configs ?? {});
  }
  if (Object.keys(configs).length) {
    md.push('## Generated configurations', '');
    for (const [k, v] of Object.entries(configs)) md.push(`<details><summary>${k}</summary>`, '', '```', v.trimEnd(), '```', '', '</details>', '');
  }
  mkdirSync(path.dirname(out), { recursive: true });
  // temp paths differ per run: show them as $BENCH_TMP
  writeFileSync(out, md.join('\n').split(tmp).join('$BENCH_TMP'));
  rmSync(tmp, { recursive: true, force: true });
  log(`wrote ${path.relative(REPO, out)}`);
}

main().then(
  () => {
    killAll();
    process.exit(0);
  },
  (e) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? e.stack : String(e)}\n`);
    killAll();
    process.exit(1);
  },
);
