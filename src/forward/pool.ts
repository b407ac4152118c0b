/**
 * One pool per upstream: a keep-alive agent per target and round-robin choice.
 * Agents outlive policy reloads when the upstream's definition is unchanged.
 */
import { Agent } from 'node:http';
import type { Target, UpstreamPolicy } from '../policy/types.js';

export interface PooledTarget {
  readonly target: Target;
  readonly agent: Agent;
}

export class UpstreamPool {
  private readonly members: PooledTarget[];
  private next = 0;

  constructor(readonly upstream: UpstreamPolicy) {
    const ka = upstream.keepAlive;
    this.members = upstream.targets.map((target) => ({
      target,
      agent: new Agent({
        keepAlive: true,
        maxSockets: ka.maxSockets,
        maxFreeSockets: ka.maxFreeSockets,
        // Idle pooled sockets are closed before a typical backend's keep-alive timeout would.
        timeout: ka.idleTimeoutMs,
        scheduling: 'lifo',
      }),
    }));
  }

  /** Round-robin over the targets. */
  pick(): PooledTarget {
    const m = this.members[this.next]!;
    this.next = this.next + 1 === this.members.length ? 0 : this.next + 1;
    return m;
  }

  /** Same targets and pool settings: the agents can be kept across a reload. */
  sameAs(u: UpstreamPolicy): boolean {
    const a = this.upstream;
    return (
      a.targets.length === u.targets.length &&
      a.targets.every((t, i) => t.url === u.targets[i]!.url) &&
      a.keepAlive.maxSockets === u.keepAlive.maxSockets &&
      a.keepAlive.maxFreeSockets === u.keepAlive.maxFreeSockets &&
      a.keepAlive.idleTimeoutMs === u.keepAlive.idleTimeoutMs
    );
  }

  /** No longer used by new requests: idle sockets close now, busy ones when their request ends. */
  retire(): void {
    for (const m of this.members) {
      m.agent.maxFreeSockets = 0;
      for (const list of Object.values(m.agent.freeSockets)) for (const s of list ?? []) s.destroy();
    }
  }

  /** Closes every socket, busy or not (shutdown). */
  close(): void {
    for (const m of this.members) m.agent.destroy();
  }
}
