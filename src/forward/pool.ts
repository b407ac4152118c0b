/**
 * One pool per upstream: a keep-alive agent per target, round-robin choice,
 * and passive health (outlier ejection): a target that fails
 * `consecutiveFailures` times in a row leaves the rotation for a back-off
 * period that grows with each ejection, as Envoy's outlier detection does.
 * Agents outlive policy reloads when the upstream's definition is unchanged.
 */
import type { Agent } from 'node:http';
import type { Clock } from '../clock.js';
import type { Target, UpstreamPolicy, UpstreamProtocol } from '../policy/types.js';
import { createAgent, createH2, sameTransport, type H2Target } from './clients/index.js';

export class PooledTarget {
  readonly agent: Agent;
  /** The target's HTTP/2 session holder (protocol h2 or h2c); undefined for HTTP/1.1. */
  readonly h2: H2Target | undefined;
  consecutiveFailures = 0;
  /** Clock time until which the target is out of rotation (0: in rotation). */
  ejectedUntil = 0;
  /** Ejections so far; the next one lasts (ejections + 1) × base. Reset by a success after return. */
  ejections = 0;

  constructor(
    readonly target: Target,
    ka: UpstreamPolicy['keepAlive'],
    protocol: UpstreamProtocol = 'http1',
    connectTimeoutMs = 5_000,
  ) {
    this.agent = createAgent(target, ka);
    this.h2 = createH2(target, protocol, ka, connectTimeoutMs);
  }
}

export interface TargetHealth {
  url: string;
  ejected: boolean;
  consecutiveFailures: number;
  ejections: number;
}

export class UpstreamPool {
  private readonly members: PooledTarget[];
  private next = 0;

  constructor(
    public upstream: UpstreamPolicy,
    private readonly clock: Clock,
  ) {
    this.members = upstream.targets.map((t) => new PooledTarget(t, upstream.keepAlive, upstream.protocol, upstream.connectTimeoutMs));
  }

  get size(): number {
    return this.members.length;
  }

  /** Round-robin over the targets in rotation; if every target is ejected, over all of them (panic mode). */
  pick(): PooledTarget {
    const n = this.members.length;
    const now = this.clock.now();
    for (let i = 0; i < n; i++) {
      const m = this.members[this.next]!;
      this.next = this.next + 1 === n ? 0 : this.next + 1;
      if (m.ejectedUntil <= now) return m;
    }
    const m = this.members[this.next]!;
    this.next = this.next + 1 === n ? 0 : this.next + 1;
    return m;
  }

  /** The target answered (with anything but a gateway error). */
  succeeded(m: PooledTarget): void {
    m.consecutiveFailures = 0;
    if (m.ejections > 0 && m.ejectedUntil <= this.clock.now()) m.ejections = 0;
  }

  /** The target was refused, reset, timed out or answered 502/503/504. */
  failed(m: PooledTarget): void {
    const o = this.upstream.outlier;
    m.consecutiveFailures++;
    if (m.consecutiveFailures < o.consecutiveFailures || this.members.length < 2) return;
    const now = this.clock.now();
    const ejected = this.members.filter((x) => x.ejectedUntil > now).length;
    if (((ejected + 1) * 100) / this.members.length > o.maxEjectionPercent) return;
    m.ejections++;
    m.consecutiveFailures = 0;
    m.ejectedUntil = now + Math.min(o.maxEjectionMs, o.baseEjectionMs * m.ejections);
  }

  health(): TargetHealth[] {
    const now = this.clock.now();
    return this.members.map((m) => ({
      url: m.target.url,
      ejected: m.ejectedUntil > now,
      consecutiveFailures: m.consecutiveFailures,
      ejections: m.ejections,
    }));
  }

  /** Same targets and pool settings: the agents (and health) can be kept across a reload. */
  canServe(u: UpstreamPolicy): boolean {
    const a = this.upstream;
    return (
      a.targets.length === u.targets.length &&
      a.targets.every((t, i) => t.url === u.targets[i]!.url) &&
      a.keepAlive.maxSockets === u.keepAlive.maxSockets &&
      a.keepAlive.maxFreeSockets === u.keepAlive.maxFreeSockets &&
      a.keepAlive.idleTimeoutMs === u.keepAlive.idleTimeoutMs &&
      sameTransport(a, u)
    );
  }

  /** No longer used by new requests: idle sockets close now, busy ones when their request ends. */
  retire(): void {
    for (const m of this.members) {
      m.h2?.retire();
      m.agent.maxFreeSockets = 0;
      for (const list of Object.values(m.agent.freeSockets)) for (const s of list ?? []) s.destroy();
    }
  }

  /** Closes every socket, busy or not (shutdown). */
  close(): void {
    for (const m of this.members) {
      m.agent.destroy();
      m.h2?.destroy();
    }
  }
}
