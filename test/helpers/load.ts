/** Closed-loop HTTP/1.1 clients for cluster tests: N loops, each sends its next request when the last one ends. */
import { Agent, request } from 'node:http';
import { Worker } from 'node:worker_threads';

export interface LoadRun {
  /** Latencies of 200 responses, ms, with their end time (performance.now()). */
  readonly ok: { at: number; ms: number }[];
  readonly statuses: Map<number, number>;
  errors: number;
  /** Stops the loops; resolves when every request in progress ended. */
  stop(): Promise<void>;
}

export function closedLoop(url: string, clients: number, headers: Record<string, string> = {}): LoadRun {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  let stopped = false;
  const run: LoadRun = {
    ok: [],
    statuses: new Map(),
    errors: 0,
    async stop() {
      stopped = true;
      await Promise.all(loops);
      agent.destroy();
    },
  };
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const start = performance.now();
      const req = request(url, { agent, headers }, (res) => {
        res.resume();
        res.on('end', () => {
          const end = performance.now();
          const code = res.statusCode ?? 0;
          run.statuses.set(code, (run.statuses.get(code) ?? 0) + 1);
          if (code === 200) run.ok.push({ at: end, ms: end - start });
          resolve();
        });
        res.on('error', () => resolve());
      });
      req.on('error', () => {
        run.errors++;
        // A refused connection (instance killed) must not spin.
        setTimeout(resolve, 20);
      });
      req.end();
    });
  const loops: Promise<void>[] = [];
  for (let i = 0; i < clients; i++) {
    loops.push(
      (async () => {
        while (!stopped) await one();
      })(),
    );
  }
  return run;
}

/** p-th percentile (0-100) of values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

/** Samples a number every `everyMs` until stopped. */
export function sampler(read: () => number, everyMs = 5): { samples: { at: number; v: number }[]; stop(): void } {
  const samples: { at: number; v: number }[] = [];
  const t = setInterval(() => samples.push({ at: performance.now(), v: read() }), everyMs);
  return { samples, stop: () => clearInterval(t) };
}

/**
 * Closed-loop clients on a worker thread (their own event loop), so that a
 * flood does not delay the responses the test measures on its main thread.
 * Resolves with the counts when stopped.
 */
export function closedLoopThread(
  url: string,
  clients: number,
  headers: Record<string, string> = {},
): { stop(): Promise<{ ok: number; errors: number; statuses: Record<string, number> }> } {
  const code = `
const { parentPort, workerData } = require('node:worker_threads');
const { Agent, request } = require('node:http');
const { url, clients, headers } = workerData;
const agent = new Agent({ keepAlive: true, maxSockets: clients });
let stopped = false;
const out = { ok: 0, errors: 0, statuses: {} };
const one = () => new Promise((resolve) => {
  const req = request(url, { agent, headers }, (res) => {
    res.resume();
    res.on('end', () => { out.statuses[res.statusCode] = (out.statuses[res.statusCode] || 0) + 1; if (res.statusCode === 200) out.ok++; resolve(); });
    res.on('error', () => resolve());
  });
  req.on('error', () => { out.errors++; setTimeout(resolve, 20); });
  req.end();
});
const loops = [];
for (let i = 0; i < clients; i++) loops.push((async () => { while (!stopped) await one(); })());
parentPort.on('message', async () => { stopped = true; await Promise.all(loops); agent.destroy(); parentPort.postMessage(out); });
`;
  const w = new Worker(code, { eval: true, workerData: { url, clients, headers } });
  return {
    stop: () =>
      new Promise((resolve) => {
        w.once('message', (m: { ok: number; errors: number; statuses: Record<string, number> }) => {
          void w.terminate();
          resolve(m);
        });
        w.postMessage('stop');
      }),
  };
}
