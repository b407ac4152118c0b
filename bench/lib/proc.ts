// Process helpers: spawn servers and wait for their ready line, pin to cores,
// sample RSS and CPU time from /proc, run a command and capture its output.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import net from 'node:net';

export const CLK_TCK = 100; // getconf CLK_TCK on Linux x86_64

export interface Server {
  name: string;
  proc: ChildProcess;
  pid: number;
  port: number;
  match: RegExpMatchArray;
  /** stdout so far (the first 20,000 characters) */
  stdout: () => string;
  stderr: () => string;
  stop: () => Promise<void>;
}

const live = new Set<ChildProcess>();
export function killAll(): void {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
  live.clear();
}
process.on('exit', killAll);
// an interrupted run (Ctrl-C, kill) must not leave its servers behind
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    killAll();
    process.exit(130);
  });
}

/** A free loopback TCP port (bind to 0, read, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Wait until a TCP connect to 127.0.0.1:port succeeds. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`port ${port} not accepting connections after ${timeoutMs} ms`);
    await sleep(50);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface StartOpts {
  name: string;
  cmd: string;
  args: string[];
  /** pin with `taskset -c CORE` */
  core?: number;
  /** regexp matched against stdout; group 1 must be the port, unless `port` is given */
  ready?: RegExp;
  /** fixed port: readiness is a successful TCP connect */
  port?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

export async function startServer(o: StartOpts): Promise<Server> {
  const cmd = o.core !== undefined ? 'taskset' : o.cmd;
  const args = o.core !== undefined ? ['-c', String(o.core), o.cmd, ...o.args] : o.args;
  const proc = spawn(cmd, args, { env: o.env ?? process.env, cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8');
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (d: string) => {
    if (err.length < 20_000) err += d;
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(t);
    live.delete(proc);
  };
  const timeoutMs = o.timeoutMs ?? 15_000;
  try {
    let match: RegExpMatchArray = [] as unknown as RegExpMatchArray;
    let port = o.port ?? 0;
    if (o.ready) {
      match = await new Promise<RegExpMatchArray>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`${o.name}: no ready line within ${timeoutMs} ms; stdout=${JSON.stringify(out.slice(0, 500))} stderr=${JSON.stringify(err.slice(0, 1500))}`)), timeoutMs);
        proc.stdout!.on('data', (d: string) => {
          if (out.length < 20_000) out += d;
          const m = out.match(o.ready!);
          if (m) {
            clearTimeout(t);
            resolve(m);
          }
        });
        proc.once('exit', (code, sig) => {
          clearTimeout(t);
          reject(new Error(`${o.name}: exited (code ${code}, signal ${sig}) before ready; stdout=${JSON.stringify(out.slice(0, 500))} stderr=${JSON.stringify(err.slice(0, 1500))}`));
        });
      });
      if (!o.port) port = Number(match[1]);
    } else {
      proc.stdout!.on('data', (d: string) => {
        if (out.length < 20_000) out += d;
      });
      const early = new Promise<never>((_, reject) =>
        proc.once('exit', (code) => reject(new Error(`${o.name}: exited (code ${code}) before ready; stderr=${JSON.stringify(err.slice(0, 1500))}`))),
      );
      await Promise.race([waitForPort(port, timeoutMs), early]);
    }
    return { name: o.name, proc, pid: proc.pid!, port, match, stdout: () => out, stderr: () => err, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** pid plus all descendants. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      const rest = st.slice(st.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(rest[1]);
      const arr = children.get(ppid) ?? [];
      arr.push(Number(d));
      children.set(ppid, arr);
    } catch {
      /* raced */
    }
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

/** utime+stime in seconds of these pids. */
export function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const p of pids) {
    try {
      const st = readFileSync(`/proc/${p}/stat`, 'utf8');
      const rest = st.slice(st.lastIndexOf(')') + 2).split(' ');
      // fields after the comm: index 0 is field 3 (state); utime is field 14, stime 15
      ticks += Number(rest[11]) + Number(rest[12]);
    } catch {
      /* gone */
    }
  }
  return ticks / CLK_TCK;
}

/** resident set size in bytes of these pids (sum). */
export function rssBytes(pids: number[]): number {
  let kb = 0;
  for (const p of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      /* gone */
    }
  }
  return kb * 1024;
}

/** Number of open file descriptors of pid that are sockets (readlink /proc/PID/fd/* = socket:[…]). */
export function socketCount(pid: number): number {
  let n = 0;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return NaN;
  }
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
    } catch {
      /* closed meanwhile */
    }
  }
  return n;
}

/** Samples a process tree while a measurement runs: peak RSS and CPU seconds used. */
export class ProcSampler {
  private pids: number[];
  private cpu0: number;
  private t0: number;
  private timer: NodeJS.Timeout;
  peakRss = 0;
  constructor(pid: number, intervalMs = 200) {
    this.pids = processTree(pid);
    this.cpu0 = cpuSeconds(this.pids);
    this.t0 = Date.now();
    this.peakRss = rssBytes(this.pids);
    this.timer = setInterval(() => {
      const r = rssBytes(this.pids);
      if (r > this.peakRss) this.peakRss = r;
    }, intervalMs);
  }
  stop(): { peakRss: number; cpuSeconds: number; wallSeconds: number } {
    clearInterval(this.timer);
    const r = rssBytes(this.pids);
    if (r > this.peakRss) this.peakRss = r;
    return { peakRss: this.peakRss, cpuSeconds: cpuSeconds(this.pids) - this.cpu0, wallSeconds: (Date.now() - this.t0) / 1000 };
  }
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a command to completion, optionally pinned to a core. */
export async function run(cmd: string, args: string[], opts: { core?: number; timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  const c = opts.core !== undefined ? 'taskset' : cmd;
  const a = opts.core !== undefined ? ['-c', String(opts.core), cmd, ...args] : args;
  return new Promise((resolve) => {
    const p = spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd });
    live.add(p);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = opts.timeoutMs ? setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs) : undefined;
    p.on('error', (e) => {
      stderr += String(e);
    });
    p.on('close', (code) => {
      if (t) clearTimeout(t);
      live.delete(p);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Render a command line as a shell would take it (for the report). */
export function shellLine(cmd: string, args: string[]): string {
  return [cmd, ...args].map((s) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`)).join(' ');
}
