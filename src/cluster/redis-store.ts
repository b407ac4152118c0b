/**
 * Leases in Redis: one Lua script call per renewal covers every pool of the
 * member (src/cluster/lua.ts), so a renewal is one round trip every
 * renewInterval, never one per request.
 *
 * The connection is set up like the rate limiter's (src/admit/redis-store.ts):
 * no offline queue and no retries per command (a renewal that cannot run now
 * fails at once and the lease client decides), reconnection for ever with a
 * short back-off (at most 250 ms here, so that a member rejoins soon after
 * Redis is back). It is a connection of its own: its traffic is a steady
 * heartbeat whose latency must not queue behind rate-limit calls.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../telemetry/log.js';
import { RENEW_SCRIPT, RELEASE_SCRIPT } from './lua.js';
import { encodeDemand, type LeaseAnswer, type LeaseReport, type LeaseStore } from './store.js';

type Reply = (string | number)[];
type RedisWithLeases = Redis & {
  sluiceRenew(n: number, ...args: (string | number)[]): Promise<Reply>;
  sluiceRelease(n: number, ...args: string[]): Promise<number>;
};

export const KEY_PREFIX = 'sluice:cluster:';

export class RedisLeaseStore implements LeaseStore {
  readonly kind = 'redis' as const;
  private client: RedisWithLeases | undefined;
  private readonly ready_: Promise<void>;
  private closed = false;

  constructor(
    readonly url: string,
    private readonly log: Logger,
  ) {
    this.ready_ = import('ioredis').then(({ Redis }) => {
      if (this.closed) return;
      const client = new Redis(url, {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        connectTimeout: 1000,
        retryStrategy: (times: number) => Math.min(25 * times, 250),
        lazyConnect: false,
      });
      client.defineCommand('sluiceRenew', { lua: RENEW_SCRIPT });
      client.defineCommand('sluiceRelease', { lua: RELEASE_SCRIPT });
      // Outages are reported by the lease client (mode changes), once per transition.
      client.on('error', () => undefined);
      client.on('ready', () => (this.seen = true));
      this.client = client as RedisWithLeases;
    });
  }

  async renew(r: LeaseReport, timeoutMs: number): Promise<LeaseAnswer> {
    await this.ready_;
    const c = this.client;
    // The first renewal (join at start-up) may come before the connection is up.
    if (c && !this.seen && (c.status === 'connecting' || c.status === 'connect' || c.status === 'wait')) await this.whenReady(c, timeoutMs * 4);
    if (!c || c.status !== 'ready') throw new Error(`lease store ${redact(this.url)} not connected (${c?.status ?? 'closed'})`);
    const keys = [`${KEY_PREFIX}cfg`, ...r.pools.map((p) => `${KEY_PREFIX}pool:${p.id}`)];
    const args: (string | number)[] = [r.member, Math.round(r.ttlMs), r.seen, r.config.length];
    for (const [k, v] of r.config) args.push(k, v);
    for (const p of r.pools) args.push(p.cap, p.limit, p.held, encodeDemand(p.demand));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`lease renewal took over ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const reply = await Promise.race([c.sluiceRenew(keys.length, ...keys, ...args), timeout]);
      if (reply[0] === 'mismatch') {
        return { kind: 'mismatch', key: String(reply[1]), cluster: String(reply[2]), mine: String(reply[3]) };
      }
      const pools: { grant: number; members: number }[] = [];
      for (let i = 1; i + 1 < reply.length; i += 2) pools.push({ grant: Number(reply[i]), members: Number(reply[i + 1]) });
      return { kind: 'ok', pools };
    } finally {
      clearTimeout(timer);
    }
  }

  private seen = false;

  /** Resolves once connected, or after `ms` (then commands fail as usual). */
  async ready(ms = 1000): Promise<void> {
    await this.ready_;
    const c = this.client;
    if (c && c.status !== 'ready') await this.whenReady(c, ms);
  }

  private whenReady(c: Redis, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        c.off('ready', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      c.once('ready', done);
    });
  }

  async release(member: string, poolIds: readonly string[]): Promise<void> {
    const c = this.client;
    if (!c || c.status !== 'ready' || poolIds.length === 0) return;
    const keys = poolIds.map((id) => `${KEY_PREFIX}pool:${id}`);
    await c.sluiceRelease(keys.length, ...keys, member).catch((err: Error) => this.log.warn({ err: err.message }, 'cluster: releasing leases failed; they expire by themselves'));
  }

  close(): void {
    this.closed = true;
    this.client?.disconnect();
  }
}

export function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
