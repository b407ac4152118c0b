/**
 * Tracing overhead: the same proxy and load with tracing off, on (OTLP
 * http/protobuf to a local sink) and on but sampled out, measured with wrk.
 * Standalone: `node --import tsx bench/tracing-overhead.ts [--duration S]
 * [--connections N] [--rounds N] [--baseline-cli OTHER/dist/cli.js]`. Needs `wrk` (apt-get install -y wrk) and a
 * built dist/ (`npm run build`; done here when missing).
 *
 * Processes: backend (child), sluice (child), wrk (child); the OTLP sink runs
 * here and only counts bytes. Modes alternate per round to spread drift.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'dist', 'cli.js');

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '8' },
    connections: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '2' },
    /** dist/cli.js of another build (e.g. before telemetry) to run as an extra "baseline" mode, tracing off. */
    'baseline-cli': { type: 'string' },
  },
});
const DURATION = Number(values.duration);
const CONNECTIONS = Number(values.connections);
const ROUNDS = Number(values.rounds);

const BACKEND = `
const http = require('node:http');
const body = Buffer.alloc(256, 120);
const s = http.createServer((req, res) => { req.resume(); res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length }); res.end(body); });
s.keepAliveTimeout = 60000;
s.listen(0, '127.0.0.1', () => console.log('port ' + s.address().port));
`;

function waitLine(p: ChildProcess, re: RegExp, what: string): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${what} did not start: ${out}`)), 15_000);
    p.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = re.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    p.once('exit', (code) => reject(new Error(`${what} exited with ${code}: ${out}`)));
  });
}

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(t);
}

/** An OTLP/HTTP endpoint that accepts and counts, nothing more. */
async function startSink(): Promise<{ server: Server; url: string; requests: () => number; bytes: () => number }> {
  let requests = 0;
  let bytes = 0;
  const server = createServer((req, res) => {
    req.on('data', (d: Buffer) => (bytes += d.length));
    req.on('end', () => {
      requests++;
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests: () => requests, bytes: () => bytes };
}

/** CPU time (user + system) of a process so far, in microseconds (Linux /proc). */
function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime
  return (ticks * 1e6) / CLOCK_TICKS;
}
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

interface Run {
  rps: number;
  requests: number;
}

function wrk(url: string, seconds: number): Run {
  const r = spawnSync('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, url], { encoding: 'utf8' });
  if (r.error) throw r.error;
  const m = /Requests\/sec:\s+([\d.]+)/.exec(r.stdout);
  const n = /(\d+) requests in/.exec(r.stdout);
  if (!m || !n) throw new Error(`unexpected wrk output:\n${r.stdout}\n${r.stderr}`);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(r.stdout);
  if (non2xx) throw new Error(`${non2xx[1]} non-2xx responses: the bench is measuring errors`);
  return { rps: Number(m[1]), requests: Number(n[1]) };
}

interface Mode {
  name: string;
  env: NodeJS.ProcessEnv;
  cli?: string;
}

async function main(): Promise<void> {
  if (spawnSync('wrk', ['--version']).error) {
    process.stderr.write('wrk not found: apt-get install -y wrk\n');
    process.exit(2);
  }
  if (!existsSync(CLI)) {
    const b = spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' });
    if (b.status !== 0) process.exit(1);
  }
  const backend = spawn(process.execPath, ['-e', BACKEND], { stdio: ['ignore', 'pipe', 'inherit'] });
  const backendPort = (await waitLine(backend, /port (\d+)/, 'backend'))[1]!;
  const sink = await startSink();
  const dir = await mkdtemp(join(tmpdir(), 'sluice-bench-'));
  const config = join(dir, 'policy.yaml');
  await writeFile(
    config,
    `upstreams:
  - name: app
    targets: [http://127.0.0.1:${backendPort}]
    maxConcurrent: 256
routes:
  - name: all
    match: { pathPrefix: / }
    upstream: app
`,
  );
  // Strip any OTEL_* of the caller so "off" is really off.
  const base: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_')));
  const otlp = { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', OTEL_TRACES_EXPORTER: 'otlp' };
  const modes: Mode[] = [
    { name: 'tracing off', env: base },
    { name: 'tracing on (otlp)', env: { ...base, ...otlp } },
    { name: 'tracing on, sampled out', env: { ...base, ...otlp, OTEL_TRACES_SAMPLER: 'always_off' } },
  ];
  if (values['baseline-cli']) modes.unshift({ name: 'baseline build', env: base, cli: values['baseline-cli'] });
  const results = new Map<string, number[]>(modes.map((m) => [m.name, []]));
  const cpu = new Map<string, number[]>(modes.map((m) => [m.name, []]));
  process.stdout.write(`wrk -t1 -c${CONNECTIONS} -d${DURATION}s, ${ROUNDS} round(s), 256-byte responses, node ${process.version}\n`);
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of round % 2 === 0 ? modes : [...modes].reverse()) {
        const p = spawn(process.execPath, [mode.cli ?? CLI, 'serve', '--config', config, '--port', '0', '--admin-port', '0', '--log-level', 'warn'], {
          stdio: ['ignore', 'pipe', 'inherit'],
          env: mode.env,
        });
        try {
          const url = (await waitLine(p, /sluice listening on (http:\/\/\S+) admin/, 'sluice'))[1]!;
          wrk(`${url}/bench`, 2); // warm-up: JIT, keep-alive pools
          const before = cpuMicros(p.pid!);
          const run = wrk(`${url}/bench`, DURATION);
          const perReq = (cpuMicros(p.pid!) - before) / run.requests;
          results.get(mode.name)!.push(run.rps);
          cpu.get(mode.name)!.push(perReq);
          process.stdout.write(
            `  round ${round + 1} ${mode.name.padEnd(26)} ${run.rps.toFixed(0).padStart(8)} req/s ${perReq.toFixed(1).padStart(7)} µs CPU/req\n`,
          );
        } finally {
          await stop(p);
        }
      }
    }
  } finally {
    await stop(backend);
    sink.server.close();
  }
  // Medians: one round disturbed by other work on a shared machine should not move the result.
  const median = (xs: number[]): number => {
    const v = [...xs].sort((a, b) => a - b);
    const mid = v.length >> 1;
    return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  };
  const off = median(results.get('tracing off')!);
  const offCpu = median(cpu.get('tracing off')!);
  // CPU per request is the steadier number on a shared machine; req/s moves with everything else running.
  process.stdout.write(`\n| mode | req/s (median) | req/s vs off | sluice CPU µs/req (median) | CPU vs off |\n|---|---:|---:|---:|---:|\n`);
  for (const m of modes) {
    const v = median(results.get(m.name)!);
    const c = median(cpu.get(m.name)!);
    process.stdout.write(`| ${m.name} | ${v.toFixed(0)} | ${(v / off).toFixed(3)} | ${c.toFixed(1)} | ${(c / offCpu).toFixed(3)} |\n`);
  }
  process.stdout.write(`\nOTLP sink received ${sink.requests()} export request(s), ${(sink.bytes() / 1e6).toFixed(1)} MB\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
