/**
 * Shared token buckets in Redis: the GCRA of gcra.ts as one atomic Lua script,
 * timed by the Redis server's clock so instances with skewed clocks agree.
 * Keys expire by themselves once their bucket would be full (PEXPIRE), so
 * Redis memory is bounded by the keys that are actually limited.
 *
 * Why not bottleneck's Redis datastore: on Redis 7.0.15 its cluster mode stalls
 * (queued jobs are not woken when the reservoir refills) and under-admits ~20%
 * while they wait; see bench/bottleneck-eval.ts. Why not rate-limiter-flexible:
 * its Redis limiter is a fixed window, not a token bucket, and it has no
 * reservation for onLimit: queue.
 *
 * Failure handling: commands fail fast while disconnected (no offline queue,
 * short command timeout); the caller falls back to its local buckets or
 * rejects (failClosed). ioredis reconnects by itself with backoff.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../telemetry/log.js';
import type { GcraParams, Take } from './gcra.js';

// KEYS[1]: bucket key. ARGV: interval ms, burst, max wait ms.
// Returns { admitted (1/0), wait ms (string, fractional), remaining }.
const SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local maxWait = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local nxt = tat + interval
local allowAt = tat - (burst - 1) * interval
if allowAt <= now then
  redis.call('SET', KEYS[1], tostring(nxt), 'PX', math.ceil(nxt - now) + 1000)
  return {1, '0', math.floor((now - allowAt) / interval + 1e-9)}
end
local wait = allowAt - now
if wait <= maxWait then
  redis.call('SET', KEYS[1], tostring(nxt), 'PX', math.ceil(nxt - now) + 1000)
  return {1, tostring(wait), 0}
end
return {0, tostring(wait), 0}
`;

type GcraCommand = (key: string, interval: string, burst: string, maxWait: string) => Promise<[number, string, number]>;
type RedisWithGcra = Redis & { sluiceGcra: GcraCommand };

/** One connection per Redis URL, shared by every class that names it. */
export class RedisStore {
  /** Undefined until ioredis is loaded: it is imported only by policies that use Redis (it costs ~20 MiB). */
  private client: RedisWithGcra | undefined;
  private closed = false;
  /** An outage was logged and its end not yet. */
  private reported = false;
  private seen = false;
  /** Commands that failed on a live connection (timeouts); those requests used local limits. */
  failedCommands = 0;
  private refs = 0;

  constructor(
    readonly url: string,
    private readonly log: Logger,
  ) {
    void import('ioredis').then(({ Redis }) => {
      if (this.closed) return;
      const client = new Redis(url, {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        commandTimeout: 500,
        connectTimeout: 1000,
        // Keeps trying for ever, at most every 2 s.
        retryStrategy: (times: number) => Math.min(50 * times, 2000),
        lazyConnect: false,
      });
      client.defineCommand('sluiceGcra', { numberOfKeys: 1, lua: SCRIPT });
      client.on('ready', () => {
        if (!this.seen) {
          this.seen = true;
          this.log.info({ redis: redact(url) }, 'rate-limit store connected');
        } else if (this.reported) {
          this.reported = false;
          this.log.info({ redis: redact(url) }, 'rate-limit store reachable again; shared limits restored');
        }
      });
      client.on('error', (err: Error) => this.down(err));
      client.on('close', () => this.down(undefined));
      this.client = client as RedisWithGcra;
    });
  }

  get connected(): boolean {
    return this.client?.status === 'ready';
  }

  /**
   * Logs an outage once per transition, not once per request or retry. A
   * failed command on a live connection (timeout) falls back for that request
   * only: the connection's own events say when it is really down.
   */
  down(err: Error | undefined): void {
    if (this.client?.status === 'ready') {
      this.failedCommands++;
      return;
    }
    if (this.reported || this.refs === 0) return;
    this.reported = true;
    this.log.warn({ redis: redact(this.url), err: err?.message }, 'rate-limit store unreachable; local limits (or failClosed) until it is back');
  }

  async take(key: string, p: GcraParams, maxWaitMs: number, out: Take): Promise<Take> {
    if (!this.client) throw new Error('rate-limit store not connected yet');
    const [ok, wait, remaining] = await this.client.sluiceGcra(key, String(p.intervalMs), String(p.burst), String(maxWaitMs));
    out.rejected = ok !== 1;
    out.waitMs = Number(wait);
    out.remaining = remaining;
    return out;
  }

  get inUse(): boolean {
    return this.refs > 0;
  }

  acquire(): this {
    this.refs++;
    return this;
  }

  /** Drops one user; the last one closes the connection. */
  release(): void {
    if (--this.refs > 0) return;
    this.closed = true;
    this.client?.disconnect();
  }
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
