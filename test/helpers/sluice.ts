/** Starts the built CLI (`dist/cli.js serve`) as a child process on ephemeral ports. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = join(ROOT, 'dist', 'cli.js');

export interface RunningSluice {
  /** The first listener: http:// or https://. */
  url: string;
  /** Further listeners (listen as a list), in policy order. */
  also: string[];
  admin: string;
  proc: ChildProcess;
  configFile: string;
  stdout: () => string;
  stderr: () => string;
  /** Resident set size of the proxy process, in bytes (Linux /proc). */
  rss(): Promise<number>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function writePolicy(yaml: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-test-'));
  const file = join(dir, 'policy.yaml');
  await writeFile(file, yaml);
  return file;
}

export async function startSluice(yaml: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<RunningSluice> {
  const configFile = await writePolicy(yaml);
  return startSluiceFile(configFile, args, env);
}

export async function startSluiceFile(configFile: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<RunningSluice> {
  const proc = spawn(process.execPath, [CLI, 'serve', '--config', configFile, '--port', '0', '--admin-port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const ready = await new Promise<RegExpMatchArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sluice did not start in 15s\nstdout: ${out}\nstderr: ${err}`)), 15_000);
    const check = (): void => {
      const m = /sluice listening on (https?:\/\/\S+) admin (http:\/\/\S+)(?: also ([^\n]+))?\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        proc.stdout!.off('data', check);
        resolve(m);
      }
    };
    proc.stdout!.on('data', check);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sluice exited with ${code}\nstdout: ${out}\nstderr: ${err}`));
    });
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return {
    url: ready[1]!,
    also: ready[3] ? ready[3].split(' ') : [],
    admin: ready[2]!,
    proc,
    configFile,
    stdout: () => out,
    stderr: () => err,
    async rss() {
      const status = await readFile(`/proc/${proc.pid}/status`, 'utf8');
      const m = /VmRSS:\s+(\d+) kB/.exec(status);
      return m ? Number(m[1]) * 1024 : 0;
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** Runs the CLI to completion. */
export function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A policy forwarding everything to one backend, with optional extra YAML appended. */
export function simplePolicy(backendUrl: string, extra = '', upstreamExtra = ''): string {
  return `upstreams:
  - name: app
    targets: [${backendUrl}]
${upstreamExtra}
routes:
  - match: { pathPrefix: / }
    upstream: app
${extra}`;
}
