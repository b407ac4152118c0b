/**
 * Leases between the workers of one machine (`sluice serve --workers N`), over
 * node:cluster IPC: the primary holds the pool tables and applies the rules of
 * allocate.ts (the same as the Redis script), each worker's lease client talks
 * to it through IpcLeaseStore. The primary's clock times the leases, as Redis's
 * TIME does for the script.
 */
import type { LeaseAnswer, LeaseReport, LeaseStore } from './store.js';
import { renew, type PoolTable } from './allocate.js';

/** Messages between primary and workers (all carry `sluice` so other IPC traffic is ignored). */
export type ToPrimary =
  | { sluice: 'renew'; seq: number; report: LeaseReport }
  | { sluice: 'release'; member: string }
  | { sluice: 'ready'; proxy: { host: string; port: number }; urls: string[]; member: string }
  | { sluice: 'reply'; seq: number; body: unknown };

export type ToWorker =
  | { sluice: 'lease'; seq: number; answer: LeaseAnswer }
  | { sluice: 'status'; seq: number }
  | { sluice: 'metrics'; seq: number }
  | { sluice: 'reload'; seq: number }
  | { sluice: 'stop' };

/** The primary's allocator: pool tables in memory. */
export class IpcAllocator {
  private readonly tables = new Map<string, PoolTable>();
  constructor(private readonly now: () => number) {}

  /**
   * The workers read the same policy file, so their caps differ only while a
   * reload reaches them one after the other: the newest caps win at once
   * (refusing them, as between machines, would put every worker on fallback
   * shares for a TTL after each reload that changes a cap).
   */
  renew(r: LeaseReport): LeaseAnswer {
    const now = this.now();
    const pools = r.pools.map((p) => {
      let t = this.tables.get(p.id);
      if (!t) this.tables.set(p.id, (t = { members: new Map(), bornAt: undefined, seen: 0 }));
      return renew(t, { id: r.member, cap: p.cap, limit: p.limit, held: p.held, demand: p.demand, seen: r.seen }, now, r.ttlMs);
    });
    return { kind: 'ok', pools };
  }

  /** A worker stopped or crashed: its shares are free at once (its process and sockets are gone). */
  release(member: string): void {
    for (const t of this.tables.values()) t.members.delete(member);
  }
}

/** A worker's side: renewals are messages to the primary. */
export class IpcLeaseStore implements LeaseStore {
  readonly kind = 'workers' as const;
  private seq = 0;
  private readonly waiting = new Map<number, (a: LeaseAnswer) => void>();
  private readonly onMessage = (m: unknown): void => {
    const msg = m as ToWorker;
    if (msg?.sluice !== 'lease') return;
    const w = this.waiting.get(msg.seq);
    if (w) {
      this.waiting.delete(msg.seq);
      w(msg.answer);
    }
  };

  constructor() {
    process.on('message', this.onMessage);
  }

  renew(report: LeaseReport, timeoutMs: number): Promise<LeaseAnswer> {
    const seq = ++this.seq;
    return new Promise<LeaseAnswer>((resolve, reject) => {
      if (!process.send || !process.connected) {
        reject(new Error('not connected to the primary'));
        return;
      }
      const timer = setTimeout(() => {
        this.waiting.delete(seq);
        reject(new Error(`lease renewal took over ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(seq, (a) => {
        clearTimeout(timer);
        resolve(a);
      });
      process.send({ sluice: 'renew', seq, report } satisfies ToPrimary);
    });
  }

  async release(member: string): Promise<void> {
    if (process.send && process.connected) process.send({ sluice: 'release', member } satisfies ToPrimary);
  }

  close(): void {
    process.off('message', this.onMessage);
  }
}
