/**
 * `sluice demo`: a fragile backend, sluice in front of it, and premium + free
 * load at ~3x the backend's capacity, run twice: once with a plain FIFO policy
 * (one class: everyone waits in the same line) and once with priority
 * scheduling (policies/demo.yaml). Prints a live table, then the comparison,
 * and writes a self-contained HTML report with latency charts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runLoad, type ClassLoad, type LoadRun } from './load.js';
import { renderLive, summarize, renderComparison, type PhaseSummary } from './table.js';
import { renderHtml } from './html.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SLOTS = 8;
const SERVICE_MS = 20;

/** The fragile backend in a process of its own; `peak()` asks it for its peak concurrency. */
async function startBackendProcess(): Promise<{ url: string; peak(): Promise<number>; reset(): void; close(): void }> {
  const proc = spawn(process.execPath, [join(ROOT, 'dist', 'demo', 'backend.js'), String(SLOTS), String(SERVICE_MS)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  const waiters: ((n: number) => void)[] = [];
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    for (let m = /peak (\d+)\n/.exec(out); m; m = /peak (\d+)\n/.exec(out)) {
      out = out.replace(m[0], '');
      waiters.shift()?.(Number(m[1]));
    }
  });
  const url = await new Promise<string>((resolve) => {
    const check = (): void => {
      const m = /(http:\/\/\S+)\n/.exec(out);
      if (m) {
        out = out.replace(m[0], '');
        resolve(m[1]!);
      } else setTimeout(check, 10);
    };
    check();
  });
  return {
    url,
    peak: () =>
      new Promise<number>((resolve) => {
        waiters.push(resolve);
        proc.stdin!.write('peak\n');
      }),
    reset: () => proc.stdin!.write('reset\n'),
    close: () => proc.stdin!.end(),
  };
}

async function startProxy(policyFile: string): Promise<{ url: string; admin: string; proc: ChildProcess }> {
  const proc = spawn(process.execPath, [join(ROOT, 'dist', 'cli.js'), 'serve', '--config', policyFile, '--port', '0', '--admin-port', '0', '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [url, admin] = await new Promise<[string, string]>((resolve, reject) => {
    let out = '';
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /sluice listening on (\S+) admin (\S+)/.exec(out);
      if (m) resolve([m[1]!, m[2]!]);
    });
    proc.once('exit', (code) => reject(new Error(`sluice exited with ${code}`)));
  });
  return { url, admin, proc };
}

function fifoPolicy(backend: string): string {
  return `# FIFO baseline: the same backend protection, one line for everyone.
upstreams:
  - name: fragile
    targets: [${backend}]
    maxConcurrent: ${SLOTS}
routes:
  - upstream: fragile
classes:
  - name: everyone
    queue: { size: 400, timeout: 2s }
defaultClass: everyone
`;
}

async function phase(
  title: string,
  policyYaml: string,
  dir: string,
  load: ClassLoad[],
  durationMs: number,
  live: boolean,
): Promise<{ summary: PhaseSummary; run: LoadRun }> {
  const file = join(dir, `${title.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}.yaml`);
  await writeFile(file, policyYaml);
  const proxy = await startProxy(file);
  try {
    const run = runLoad(proxy.url, load, durationMs);
    // The proxy's own view (queued per class) comes from its admin /status.
    let queued: Record<string, number> = {};
    const redraw = setInterval(() => {
      void fetch(`${proxy.admin}/status`)
        .then((r) => r.json() as Promise<{ classes: { name: string; queued: number }[] }>)
        .then((st) => (queued = Object.fromEntries(st.classes.map((c) => [c.name, c.queued]))))
        .catch(() => undefined);
      const text = renderLive(title, run, durationMs, queued);
      if (live) process.stdout.write(`\x1b[H\x1b[2J${text}\n`);
    }, 500);
    if (!live) process.stdout.write(`running ${title} for ${durationMs / 1000}s...\n`);
    await run.done;
    clearInterval(redraw);
    return { summary: summarize(title, run, durationMs), run };
  } finally {
    proxy.proc.kill('SIGTERM');
  }
}

export async function runDemo(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: '9' },
      'no-html': { type: 'boolean', default: false },
      'premium-rate': { type: 'string', default: '100' },
      'free-rate': { type: 'string', default: '1100' },
    },
  });
  const durationMs = Number(values.duration) * 1000;
  const capacity = (SLOTS * 1000) / SERVICE_MS;
  const load: ClassLoad[] = [
    { name: 'premium', rate: Number(values['premium-rate']), headers: { 'x-tier': 'premium' } },
    { name: 'free', rate: Number(values['free-rate']), headers: {} },
  ];
  const offered = load.reduce((s, c) => s + c.rate, 0);
  const live = process.stdout.isTTY === true;
  const backend = await startBackendProcess();
  const dir = await mkdtemp(join(tmpdir(), 'sluice-demo-'));
  const demoPolicy = (await readFile(join(ROOT, 'policies', 'demo.yaml'), 'utf8')).replace('http://127.0.0.1:3000', backend.url);
  process.stdout.write(
    `sluice demo: backend with ${SLOTS} slots x ${SERVICE_MS} ms = ${capacity} req/s; offered ${offered} req/s (${(offered / capacity).toFixed(1)}x): ` +
      `${load.map((c) => `${c.name} ${c.rate}/s`).join(', ')}\n`,
  );
  try {
    const fifo = await phase('FIFO (one class)', fifoPolicy(backend.url), dir, load, durationMs, live);
    const fifoPeak = await backend.peak();
    backend.reset();
    const sched = await phase('sluice (policies/demo.yaml)', demoPolicy, dir, load, durationMs, live);
    const schedPeak = await backend.peak();
    process.stdout.write(`\n${renderComparison([fifo.summary, sched.summary])}\n`);
    process.stdout.write(`backend peak concurrency: FIFO ${fifoPeak}, sluice ${schedPeak} (limit ${SLOTS})\n`);
    if (!values['no-html']) {
      const out = join(dir, 'report.html');
      await writeFile(out, await renderHtml([fifo, sched], { capacity, offered, slots: SLOTS, serviceMs: SERVICE_MS }));
      process.stdout.write(`HTML report: ${out}\n`);
    }
  } finally {
    backend.close();
  }
}
