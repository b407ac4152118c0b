/**
 * `sluice serve --workers N|auto`: N processes on one port (node:cluster; the
 * primary accepts and hands connections round-robin to the workers).
 *
 * The primary serves nothing itself. It holds the lease tables of the workers
 * (IpcAllocator: caps, reserves and priorities hold across the workers with the
 * same rules as between instances), runs the admin listener and answers /status
 * and /metrics for the whole machine by asking every worker over IPC, passes
 * SIGHUP and POST /reload to every worker, drains every worker on SIGTERM/SIGINT,
 * and replaces a worker that dies (its shares are released at once: its process
 * and its sockets are gone). With a `cluster` policy key each worker is also a
 * member of the Redis-backed cluster in its own right (member NAME-wN).
 */
import cluster, { type Worker } from 'node:cluster';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { loadPolicyFile, formatIssue } from '../policy/load.js';
import type { Policy } from '../policy/types.js';
import { PolicyWatcher } from '../policy/watch.js';
import { createAdminServer } from '../admin/server.js';
import type { Logger } from '../telemetry/log.js';
import { Sluice, PolicyLoadError, summarize } from '../main.js';
import { IpcAllocator, type ToPrimary, type ToWorker } from './ipc.js';
import { ClusterJoinError } from './index.js';
import { RedisLeaseStore } from './redis-store.js';
import { capPools } from '../schedule/limit/index.js';

/** `--workers` value: a count ≥ 1 or `auto` (the cores this process may use). Undefined: invalid. */
export function parseWorkers(v: string | undefined): number | undefined {
  if (v === undefined) return 1;
  if (v === 'auto') return availableParallelism();
  const n = Number(v);
  return Number.isInteger(n) && n >= 1 && n <= 256 ? n : undefined;
}

/** Set in the environment of each worker: its number, from 1. */
export const WORKER_ENV = 'SLUICE_WORKER';

export function isWorker(): boolean {
  return cluster.isWorker && process.env[WORKER_ENV] !== undefined;
}

export interface ServeArgs {
  config: string;
  port: number | undefined;
  adminPort: number | undefined;
  workers: number;
  /** serve --watch: the primary reloads every worker when the policy or a file it names changes. */
  watch?: boolean;
  log: Logger;
  fail(msg: string, code?: number): never;
  fmtHost(h: string): string;
}

// ---------------------------------------------------------------- worker side

/** A worker: serves the proxy port, no admin; leases through the primary (or Redis). */
export async function runWorker(a: ServeArgs): Promise<void> {
  const id = Number(process.env[WORKER_ENV]);
  const log = a.log.child({ worker: id });
  let sluice: Sluice;
  try {
    sluice = await Sluice.fromFile(a.config, { port: a.port, log, admin: false, worker: id });
  } catch (err) {
    if (err instanceof PolicyLoadError) a.fail(err.errors.join('\n'));
    throw err;
  }
  let addrs;
  try {
    addrs = await sluice.start();
  } catch (err) {
    if (err instanceof ClusterJoinError) a.fail(`sluice: ${err.message}`);
    a.fail(`cannot listen: ${(err as Error).message}`);
  }
  const send = (m: ToPrimary): void => {
    if (process.connected) process.send!(m);
  };
  const stop = (): void => {
    sluice.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('message', (raw: unknown) => {
    const m = raw as ToWorker;
    switch (m?.sluice) {
      case 'status':
        send({ sluice: 'reply', seq: m.seq, body: sluice.status() });
        return;
      case 'metrics':
        sluice.telemetry.metrics.text().then(
          (text) => send({ sluice: 'reply', seq: m.seq, body: text }),
          (err: Error) => send({ sluice: 'reply', seq: m.seq, body: `# error: ${err.message}\n` }),
        );
        return;
      case 'reload':
        sluice.reload().then(
          (r) => send({ sluice: 'reply', seq: m.seq, body: r }),
          (err: Error) => send({ sluice: 'reply', seq: m.seq, body: { ok: false, errors: [err.message] } }),
        );
        return;
      case 'stop':
        stop();
        return;
    }
  });
  // The primary went away: nobody coordinates our shares any more.
  process.once('disconnect', stop);
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  // Reloads come from the primary, which forwards SIGHUP; a SIGHUP to the whole group must not kill us.
  process.on('SIGHUP', () => undefined);
  send({ sluice: 'ready', proxy: addrs.proxy, urls: addrs.listeners.map((l) => l.url), member: sluice.cluster?.member ?? `w${id}` });
}

// ---------------------------------------------------------------- primary side

interface Slot {
  id: number;
  worker: Worker;
  ready: boolean;
  member: string;
  proxy?: { host: string; port: number };
  /** The worker's listeners (http:// or https://), in policy order. */
  urls?: string[];
}

/** The primary: forks the workers, coordinates their leases, serves admin, relays reload and drain. */
export async function runPrimary(a: ServeArgs): Promise<void> {
  const log = a.log;
  const loaded = await loadPolicyFile(a.config);
  if (!loaded.ok) a.fail(loaded.issues.map(formatIssue).join('\n'));
  let policy: Policy = loaded.policy;
  const allocator = new IpcAllocator(() => performance.now());
  const slots = new Map<number, Slot>();
  const pending = new Map<number, (body: unknown) => void>();
  let seq = 0;
  let stopping = false;
  let started = false;
  let admin: Server | undefined;

  cluster.setupPrimary({ exec: process.argv[1]!, args: process.argv.slice(2) });

  let onAllReady: () => void = () => undefined;
  const allReady = new Promise<void>((r) => (onAllReady = r));

  const fork = (id: number): void => {
    const forkedAt = performance.now();
    const worker = cluster.fork({ [WORKER_ENV]: String(id) });
    const slot: Slot = { id, worker, ready: false, member: `w${id}` };
    slots.set(id, slot);
    worker.on('message', (raw: unknown) => {
      const m = raw as ToPrimary;
      switch (m?.sluice) {
        case 'renew':
          worker.send({ sluice: 'lease', seq: m.seq, answer: allocator.renew(m.report) } satisfies ToWorker);
          return;
        case 'release':
          allocator.release(m.member);
          return;
        case 'ready':
          slot.ready = true;
          slot.member = m.member;
          slot.proxy = m.proxy;
          slot.urls = m.urls;
          if ([...slots.values()].every((s) => s.ready)) onAllReady();
          return;
        case 'reply': {
          const p = pending.get(m.seq);
          if (p) {
            pending.delete(m.seq);
            p(m.body);
          }
          return;
        }
      }
    });
    worker.on('exit', (code, signal) => {
      allocator.release(`w${id}`);
      // Its Redis leases too (a member of its own there): its process and sockets are gone.
      if (policy.cluster && slot.ready) releaseRedis(policy, slot.member, log);
      if (slots.get(id)?.worker === worker) slots.delete(id);
      if (stopping) {
        if (slots.size === 0) void finish();
        return;
      }
      if (!started) {
        // A worker that cannot start (bad port, refused by the cluster) fails the whole start.
        for (const s of slots.values()) s.worker.process.kill('SIGKILL');
        process.exit(1);
      }
      // A worker that keeps dying at once is restarted at most once a second.
      const early = performance.now() - forkedAt < 1000;
      log.warn({ worker: id, code, signal }, 'worker exited; starting a replacement');
      if (early) setTimeout(() => !stopping && fork(id), 1000);
      else fork(id);
    });
  };

  /** Asks every ready worker; answers in worker order (undefined for a worker that did not answer in 5 s). */
  const askAll = (kind: 'status' | 'metrics' | 'reload'): Promise<{ id: number; pid: number | undefined; body: unknown }[]> =>
    Promise.all(
      [...slots.values()]
        .filter((s) => s.ready && s.worker.isConnected())
        .sort((x, y) => x.id - y.id)
        .map(
          (s) =>
            new Promise<{ id: number; pid: number | undefined; body: unknown }>((resolve) => {
              const n = ++seq;
              const timer = setTimeout(() => {
                pending.delete(n);
                resolve({ id: s.id, pid: s.worker.process.pid, body: undefined });
              }, 5000);
              pending.set(n, (body) => {
                clearTimeout(timer);
                resolve({ id: s.id, pid: s.worker.process.pid, body });
              });
              s.worker.send({ sluice: kind, seq: n } satisfies ToWorker);
            }),
        ),
    );

  const reload = async (): Promise<{ ok: true; summary: string } | { ok: false; errors: string[] }> => {
    const r = await loadPolicyFile(a.config);
    if (!r.ok) {
      const errors = r.issues.map(formatIssue);
      log.error({ errors }, 'policy reload rejected; keeping the current policy');
      return { ok: false, errors };
    }
    policy = r.policy;
    const answers = await askAll('reload');
    const errors = answers.flatMap((x) => {
      const b = x.body as { ok: boolean; errors?: string[] } | undefined;
      if (!b) return [`worker ${x.id}: no answer`];
      return b.ok ? [] : (b.errors ?? []).map((e) => `worker ${x.id}: ${e}`);
    });
    if (errors.length > 0) return { ok: false, errors };
    const summary = summarize(r.policy);
    log.info({ summary, workers: answers.length }, 'policy reloaded on every worker');
    return { ok: true, summary };
  };

  const finish = async (): Promise<void> => {
    if (admin) {
      const s = admin;
      await new Promise<void>((r) => s.close(() => r()));
      s.closeAllConnections();
    }
    process.exit(0);
  };

  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, workers: slots.size }, 'shutting down: draining every worker');
    if (slots.size === 0) void finish();
    for (const s of slots.values()) s.worker.send({ sluice: 'stop' } satisfies ToWorker);
    // A worker stuck past the grace period is killed; its exit ends the wait.
    setTimeout(() => {
      for (const s of slots.values()) s.worker.process.kill('SIGKILL');
    }, policy.shutdown.graceMs + 5000).unref();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => void reload());

  for (let i = 1; i <= a.workers; i++) fork(i);
  await allReady;
  started = true;
  // --watch: the same reload as SIGHUP, on a change of the policy or a file it names (policy/watch.ts).
  if (a.watch) new PolicyWatcher({ currentPolicy: () => policy, reload });

  admin = createAdminServer({
    status: () => undefined,
    statusAsync: async () => aggregateStatus(policy, await askAll('status')),
    metrics: async () => mergeMetrics((await askAll('metrics')).map((x) => ({ worker: x.id, text: typeof x.body === 'string' ? x.body : '' }))),
    reload,
    reloadToken: () => policy.admin.token,
  });
  const server = admin;
  const adminAddr = await new Promise<AddressInfo>((resolve, reject) => {
    server.once('error', reject);
    server.listen(a.adminPort ?? policy.admin.port, policy.admin.host, () => resolve(server.address() as AddressInfo));
  }).catch((err: Error) => a.fail(`cannot listen: ${err.message}`));
  // The same ready line as one process (cli.ts): the first listener, the admin port, then the others.
  const urls = [...slots.values()].find((s) => s.urls)!.urls!;
  process.stdout.write(
    `sluice listening on ${urls[0]} admin http://${a.fmtHost(adminAddr.address)}:${adminAddr.port}` +
      (urls.length > 1 ? ` also ${urls.slice(1).join(' ')}` : '') +
      '\n',
  );
  log.info({ workers: a.workers }, 'workers ready');
}

/** Gives back a dead worker's Redis leases at once instead of after their TTL. Best effort. */
function releaseRedis(policy: Policy, member: string, log: Logger): void {
  const store = new RedisLeaseStore(policy.cluster!.redis, log);
  const ids = capPools(policy).pools.map((p) => p.id);
  // A renewal-sized wait for the connection, then the release; closed either way.
  void store
    .ready()
    .then(() => store.release(member, ids))
    .finally(() => store.close());
}

interface ClusterEntry {
  clusterCap: number;
  share: number;
  instances: number;
  mode: string;
}

interface WorkerStatus {
  policy: string;
  classes: { name: string; priority: number; weight: number; inFlight: number; queued: number; served: number; rejected: Record<string, number> }[];
  upstreams: { name: string; inFlight: number; queued: number; maxConcurrent: number | null; cluster?: ClusterEntry | null }[];
  inFlight: number;
  queued: number;
  bufferedBytes?: number;
}

/** The machine's /status: counts summed over the workers, and each worker's own status. */
export function aggregateStatus(policy: Policy, answers: { id: number; pid: number | undefined; body: unknown }[]): unknown {
  const classes = new Map<string, WorkerStatus['classes'][number]>();
  const upstreams = new Map<string, WorkerStatus['upstreams'][number]>();
  let inFlight = 0;
  let queued = 0;
  let bufferedBytes = 0;
  for (const x of answers) {
    const s = x.body as WorkerStatus | undefined;
    if (!s) continue;
    inFlight += s.inFlight;
    queued += s.queued;
    bufferedBytes += s.bufferedBytes ?? 0;
    for (const c of s.classes) {
      const t = classes.get(c.name);
      if (!t) {
        classes.set(c.name, { name: c.name, priority: c.priority, weight: c.weight, inFlight: c.inFlight, queued: c.queued, served: c.served, rejected: { ...c.rejected } });
        continue;
      }
      t.inFlight += c.inFlight;
      t.queued += c.queued;
      t.served += c.served;
      for (const [k, v] of Object.entries(c.rejected)) t.rejected[k] = (t.rejected[k] ?? 0) + v;
    }
    for (const u of s.upstreams) {
      const t = upstreams.get(u.name);
      const c = u.cluster ? { ...u.cluster } : null;
      if (!t) upstreams.set(u.name, { name: u.name, inFlight: u.inFlight, queued: u.queued, maxConcurrent: u.maxConcurrent, cluster: c });
      else {
        t.inFlight += u.inFlight;
        t.queued += u.queued;
        // Each worker enforces its share of the cap: the machine's cap in force is their sum.
        if (t.maxConcurrent !== null && u.maxConcurrent !== null) t.maxConcurrent += u.maxConcurrent;
        // The machine's share: the workers' shares together; fallback when any worker is.
        if (t.cluster && c) {
          t.cluster.share += c.share;
          t.cluster.instances = Math.max(t.cluster.instances, c.instances);
          if (c.mode !== 'leased') t.cluster.mode = c.mode;
        }
      }
    }
  }
  return {
    policy: policy.source,
    classes: [...classes.values()],
    upstreams: [...upstreams.values()],
    inFlight,
    queued,
    bufferedBytes,
    workers: answers.map((x) => ({ worker: x.id, pid: x.pid, status: x.body ?? null })),
  };
}

/**
 * One Prometheus exposition from the workers' own: every sample gets a
 * `worker` label; each family's HELP and TYPE appear once, its samples together.
 */
export function mergeMetrics(parts: { worker: number; text: string }[]): string {
  const families = new Map<string, { head: string[]; samples: string[] }>();
  for (const { worker, text } of parts) {
    let fam: { head: string[]; samples: string[] } | undefined;
    // Families first seen in this part: their HELP and TYPE lines are taken from it.
    const owned = new Set<string>();
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const m = /^# (HELP|TYPE) (\S+)/.exec(line);
      if (m) {
        const name = m[2]!;
        fam = families.get(name);
        if (!fam) {
          families.set(name, (fam = { head: [], samples: [] }));
          owned.add(name);
        }
        if (owned.has(name)) fam.head.push(line);
        continue;
      }
      if (line.startsWith('#')) continue;
      if (!fam) families.set('', (fam = { head: [], samples: [] }));
      fam.samples.push(withLabel(line, `worker="${worker}"`));
    }
  }
  let out = '';
  for (const f of families.values()) {
    for (const h of f.head) out += `${h}\n`;
    for (const s of f.samples) out += `${s}\n`;
  }
  return out;
}

function withLabel(sample: string, label: string): string {
  const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(sample)?.[0] ?? '';
  const rest = sample.slice(name.length);
  if (rest.startsWith('{}')) return `${name}{${label}}${rest.slice(2)}`;
  if (rest.startsWith('{')) return `${name}{${label},${rest.slice(1)}`;
  return `${name}{${label}}${rest}`;
}
