// Load generators: wrk (HTTP/1.1) and h2load (HTTP/2 cleartext), output parsing.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { run, shellLine } from './proc.js';

export const LOADGEN_CORE = 1;
export const PROXY_CORE = 0;

export interface LoadResult {
  rps: number;
  p50ms: number;
  p99ms: number;
  requests: number;
  bytesPerSec: number;
  errors: number; // socket errors + non-2xx/3xx
  non2xx: number;
  raw: string;
  command: string;
}

const TIME_UNIT: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const SIZE_UNIT: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

function parseTime(s: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(s.trim());
  if (!m) return NaN;
  return Number(m[1]) * TIME_UNIT[m[2]!]!;
}

export function parseWrk(out: string): Omit<LoadResult, 'raw' | 'command'> {
  const num = (re: RegExp): number => {
    const m = re.exec(out);
    return m ? Number(m[1]) : NaN;
  };
  const p = (pct: string): number => {
    const m = new RegExp(`^\\s+${pct}%\\s+(\\S+)`, 'm').exec(out);
    return m ? parseTime(m[1]!) : NaN;
  };
  const tr = /Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB|TB)/.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = num(/Non-2xx or 3xx responses: (\d+)/);
  const sockErr = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50ms: p('50'),
    p99ms: p('99'),
    requests: num(/(\d+) requests in/),
    bytesPerSec: tr ? Number(tr[1]) * SIZE_UNIT[tr[2]!]! : NaN,
    errors: sockErr + (Number.isNaN(non2xx) ? 0 : non2xx),
    non2xx: Number.isNaN(non2xx) ? 0 : non2xx,
  };
}

export interface WrkOpts {
  url: string;
  connections: number;
  durationS: number;
  threads?: number;
  script?: string; // path to a lua script
  timeoutS?: number;
}

export function wrkArgs(o: WrkOpts): string[] {
  const a = ['-t', String(o.threads ?? 1), '-c', String(o.connections), '-d', `${o.durationS}s`, '--latency'];
  if (o.timeoutS) a.push('--timeout', `${o.timeoutS}s`);
  if (o.script) a.push('-s', o.script);
  a.push(o.url);
  return a;
}

export async function wrk(o: WrkOpts): Promise<LoadResult> {
  const args = wrkArgs(o);
  const r = await run('wrk', args, { core: LOADGEN_CORE, timeoutMs: (o.durationS + 30) * 1000 });
  const command = shellLine('taskset', ['-c', String(LOADGEN_CORE), 'wrk', ...args]);
  if (r.code !== 0) throw new Error(`wrk failed (${r.code}): ${r.stderr.slice(0, 500)} ${r.stdout.slice(0, 500)}`);
  const parsed = parseWrk(r.stdout);
  if (!Number.isFinite(parsed.rps)) throw new Error(`could not parse wrk output: ${r.stdout.slice(0, 800)}`);
  return { ...parsed, raw: r.stdout, command };
}

export interface H2loadOpts {
  url: string;
  clients: number;
  streams: number; // max concurrent streams per client (-m)
  durationS: number;
  warmupS: number;
  logFile: string;
}

export function h2loadArgs(o: H2loadOpts): string[] {
  return ['-c', String(o.clients), '-m', String(o.streams), '-t', '1', '-D', String(o.durationS), ...(o.warmupS > 0 ? ['--warm-up-time', String(o.warmupS)] : []), `--log-file=${o.logFile}`, o.url];
}

export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export async function h2load(o: H2loadOpts): Promise<LoadResult> {
  writeFileSync(o.logFile, '');
  const args = h2loadArgs(o);
  const r = await run('h2load', args, { core: LOADGEN_CORE, timeoutMs: (o.durationS + o.warmupS + 30) * 1000 });
  const command = shellLine('taskset', ['-c', String(LOADGEN_CORE), 'h2load', ...args]);
  const fin = /finished in ([\d.]+)s, ([\d.]+) req\/s, ([\d.]+)(B|KB|MB|GB)\/s/.exec(r.stdout);
  if (r.code !== 0 || !fin) throw new Error(`h2load failed (${r.code}): ${r.stderr.slice(0, 500)} ${r.stdout.slice(-800)}`);
  const reqs = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(r.stdout);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(r.stdout);
  // per-request log: start_us \t status \t duration_us; status 0 = not finished
  const durs: number[] = [];
  for (const line of readFileSync(o.logFile, 'utf8').split('\n')) {
    const f = line.split('\t');
    if (f.length >= 3 && f[1] !== '0') durs.push(Number(f[2]) / 1000);
  }
  const sorted = Float64Array.from(durs).sort();
  return {
    rps: Number(fin[2]),
    p50ms: percentile(sorted, 0.5),
    p99ms: percentile(sorted, 0.99),
    requests: reqs ? Number(reqs[4]) : NaN,
    bytesPerSec: Number(fin[3]) * SIZE_UNIT[fin[4]!]!,
    errors: reqs ? Number(reqs[5]) + Number(reqs[6]) + Number(reqs[7]) : 0,
    non2xx: codes ? Number(codes[2]) + Number(codes[3]) + Number(codes[4]) : 0,
    raw: r.stdout,
    command,
  };
}

/** One class of bench/lib/openloop.mjs's output. */
export interface OpenLoopClass {
  sent: number;
  ok: number;
  rejected: number;
  backendOverload: number;
  otherStatus: Record<string, number>;
  errors: number;
  timeouts: number;
  p50ms: number | null;
  p99ms: number | null;
  okPerSec: number;
}
export interface OpenLoopOut {
  durationS: number;
  windowS: number;
  sendWindowS: number;
  answerWindowS: number;
  outstandingAtEnd: number;
  classes: Record<string, OpenLoopClass>;
}

/** Answers that are neither 2xx nor a proxy rejection (503/429): backend 503s, other statuses, errors, timeouts. */
export function openLoopOther(c: OpenLoopClass): number {
  return c.backendOverload + c.errors + c.timeouts + Object.values(c.otherStatus).reduce((a, b) => a + b, 0);
}

/** Run bench/lib/openloop.mjs (args after the script name) pinned to LOADGEN_CORE and parse its JSON line. */
export async function openLoop(args: string[], durationS: number): Promise<OpenLoopOut> {
  const repo = path.resolve(import.meta.dirname, '..', '..');
  const r = await run('node', ['bench/lib/openloop.mjs', ...args], { core: LOADGEN_CORE, cwd: repo, timeoutMs: (durationS + 30) * 1000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code !== 0 || !line.startsWith('{')) throw new Error(`generator failed (${r.code}): ${r.stderr.slice(0, 400)}`);
  return JSON.parse(line) as OpenLoopOut;
}
