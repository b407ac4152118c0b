/**
 * Where leases live: Redis (RedisLeaseStore, between machines) or the primary
 * process of `--workers` (IpcLeaseStore, between the workers of one machine).
 * Both run the rules of allocate.ts; the lease client does not know which.
 */
import type { LevelDemand } from '../schedule/limit/index.js';

/** One renewal of every pool of one member. */
export interface LeaseReport {
  readonly member: string;
  readonly ttlMs: number;
  /** Members this one last knew of, for the store's warm-up (0: never knew). */
  readonly seen: number;
  /** Policy key → cap value; members whose entries differ may not share pools. */
  readonly config: readonly (readonly [string, string])[];
  readonly pools: readonly {
    readonly id: string;
    readonly cap: number;
    readonly limit: number;
    readonly held: number;
    readonly demand: readonly LevelDemand[];
  }[];
}

export type LeaseAnswer =
  | { readonly kind: 'ok'; readonly pools: readonly { readonly grant: number; readonly members: number }[] }
  /** The cluster runs with other caps: `key` is the policy key that differs. */
  | { readonly kind: 'mismatch'; readonly key: string; readonly cluster: string; readonly mine: string };

export interface LeaseStore {
  /** For logs and /status: `redis` or `workers`. */
  readonly kind: 'redis' | 'workers';
  /** Renews every pool in one atomic step. Rejects when the store cannot be reached in `timeoutMs`. */
  renew(report: LeaseReport, timeoutMs: number): Promise<LeaseAnswer>;
  /** Gives every share back at once (graceful stop). Best effort. */
  release(member: string, poolIds: readonly string[]): Promise<void>;
  close(): void;
}

/** "priority:count:weighted;..." (the Lua script's demand field). */
export function encodeDemand(d: readonly LevelDemand[]): string {
  return d.map((l) => `${l.priority}:${l.count}:${l.weighted}`).join(';');
}
