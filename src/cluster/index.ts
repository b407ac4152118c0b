/**
 * Caps shared between processes: leases on shares of every finite cap, held in
 * Redis between machines (policy `cluster`) or in the primary between the
 * workers of `--workers N`. See docs/cluster.md.
 */
import { hostname } from 'node:os';
import type { Clock } from '../clock.js';
import type { Policy } from '../policy/types.js';
import type { Logger } from '../telemetry/log.js';
import type { LimitSink } from '../schedule/limit/index.js';
import { LeaseClient } from './lease-client.js';
import { RedisLeaseStore } from './redis-store.js';
import { IpcLeaseStore } from './ipc.js';

export { LeaseClient, type ClusterStatus, type ClusterPoolStatus, type ClusterMode } from './lease-client.js';

/** Lease timing between the workers of one machine (no policy key: IPC is fast and local). */
export const WORKER_LEASE = { ttlMs: 2000, intervalMs: 50 } as const;

export interface ClusterOptions {
  sink: LimitSink;
  clock: Clock;
  log: Logger;
  /** Set in a worker of `--workers N` (N > 1): its number, from 1. */
  worker?: number;
  onShareWait?(poolId: string, ms: number): void;
}

/** The lease client this process needs, if any: Redis when the policy names one, else IPC in a worker. */
export function createCluster(policy: Policy, o: ClusterOptions): LeaseClient | undefined {
  const suffix = o.worker !== undefined ? `-w${o.worker}` : '';
  if (policy.cluster) {
    const k = policy.cluster;
    return new LeaseClient(policy, {
      store: new RedisLeaseStore(k.redis, o.log),
      member: `${k.instance ?? `${hostname()}-${process.pid}`}${suffix}`,
      ttlMs: k.leaseTtlMs,
      intervalMs: k.renewIntervalMs,
      clock: o.clock,
      log: o.log,
      sink: o.sink,
      ...(o.onShareWait ? { onShareWait: o.onShareWait } : {}),
    });
  }
  if (o.worker === undefined) return undefined;
  return new LeaseClient(policy, {
    store: new IpcLeaseStore(),
    member: `w${o.worker}`,
    ttlMs: WORKER_LEASE.ttlMs,
    intervalMs: WORKER_LEASE.intervalMs,
    clock: o.clock,
    log: o.log,
    sink: o.sink,
    ...(o.onShareWait ? { onShareWait: o.onShareWait } : {}),
  });
}

/** The cluster refused this instance (its caps differ from the cluster's). */
export class ClusterJoinError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClusterJoinError';
  }
}

/** /status entries of upstreams and classes with their cluster pool (cap, share, instances, mode). */
export function withClusterShares<C extends { name: string }, U extends { name: string }>(
  classes: C[],
  upstreams: U[],
  cluster: LeaseClient,
): { classes: C[]; upstreams: U[]; cluster: ReturnType<LeaseClient['status']> } {
  const st = cluster.status();
  // An upstream's cap is its shared pool plus the reserves held at it.
  const entry = (match: (p: (typeof st.pools)[number]) => boolean) => {
    const ps = st.pools.filter(match);
    if (ps.length === 0) return null;
    return {
      clusterCap: ps.reduce((n, p) => n + p.clusterCap, 0),
      share: ps.reduce((n, p) => n + p.share, 0),
      instances: Math.max(...ps.map((p) => p.instances)),
      mode: st.mode,
    };
  };
  return {
    classes: classes.map((c) => ({ ...c, cluster: entry((p) => p.kind === 'class' && p.class === c.name) })),
    upstreams: upstreams.map((u) => ({ ...u, cluster: entry((p) => (p.kind === 'upstream' || p.kind === 'reserve') && p.upstream === u.name) })),
    cluster: st,
  };
}
