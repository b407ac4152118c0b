/**
 * Open-loop load: requests start on a fixed schedule whatever the
 * proxy does, as real users do, so queueing shows up as latency and not as a
 * slower load generator. Results are kept per class and per second.
 */
import { Agent, request } from 'node:http';

export interface ClassLoad {
  name: string;
  /** Requests per second. */
  rate: number;
  headers: Record<string, string>;
}

export interface Sample {
  at: number;
  ms: number;
  status: number;
}

export class ClassStats {
  readonly samples: Sample[] = [];
  sent = 0;
  constructor(readonly name: string) {}

  ok(from = 0, to = Infinity): Sample[] {
    return this.samples.filter((s) => s.status === 200 && s.at >= from && s.at < to);
  }
  rejected(from = 0, to = Infinity): number {
    return this.samples.filter((s) => (s.status === 503 || s.status === 429) && s.at >= from && s.at < to).length;
  }
  errors(from = 0, to = Infinity): number {
    return this.samples.filter((s) => s.status !== 200 && s.status !== 503 && s.status !== 429 && s.at >= from && s.at < to).length;
  }
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function latencies(samples: Sample[]): number[] {
  return samples.map((s) => s.ms).sort((a, b) => a - b);
}

export interface LoadRun {
  stats: Map<string, ClassStats>;
  start: number;
  /** Resolves when every started request has finished. */
  done: Promise<void>;
}

export function runLoad(target: string, classes: ClassLoad[], durationMs: number): LoadRun {
  // Keep every socket: a queued request holds one, and churning them would measure TCP, not the proxy.
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 4096 });
  const url = new URL(target);
  const stats = new Map(classes.map((c) => [c.name, new ClassStats(c.name)]));
  const start = performance.now();
  const pending = new Set<Promise<void>>();
  const one = (c: ClassLoad, st: ClassStats): void => {
    const t0 = performance.now();
    st.sent++;
    const p = new Promise<void>((resolve) => {
      const req = request(
        { host: url.hostname, port: url.port, path: `/work?c=${c.name}`, headers: c.headers, agent },
        (res) => {
          res.resume();
          res.on('end', () => {
            st.samples.push({ at: t0 - start, ms: performance.now() - t0, status: res.statusCode ?? 0 });
            resolve();
          });
        },
      );
      req.on('error', () => {
        st.samples.push({ at: t0 - start, ms: performance.now() - t0, status: 0 });
        resolve();
      });
      req.end();
    });
    pending.add(p);
    void p.then(() => pending.delete(p));
  };
  // Arrivals are paced by a 5 ms clock: each class accrues rate × elapsed requests
  // and starts them, so the offered load does not depend on how fast answers come.
  const credit = new Map(classes.map((c) => [c.name, 0]));
  let last = start;
  const pacer = setInterval(() => {
    const now = performance.now();
    const dt = now - last;
    last = now;
    if (now - start >= durationMs) {
      clearInterval(pacer);
      return;
    }
    for (const c of classes) {
      let n = credit.get(c.name)! + (c.rate * dt) / 1000;
      const st = stats.get(c.name)!;
      for (; n >= 1; n--) one(c, st);
      credit.set(c.name, n);
    }
  }, 5);
  const done = new Promise<void>((resolve) => {
    const wait = (): void => {
      if (performance.now() - start < durationMs || pending.size > 0) {
        setTimeout(wait, 50);
        return;
      }
      agent.destroy();
      resolve();
    };
    wait();
  });
  return { stats, start, done };
}
