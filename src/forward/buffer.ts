/**
 * Buffers that keep slow clients from holding upstream slots, and the minimum
 * rate that cuts clients too slow for the buffers (NGINX proxy_buffering /
 * proxy_request_buffering, Apache mod_reqtimeout MinRate).
 *
 * - `BufferBudget`: one process-wide byte budget (`limits.buffering.budget`) that
 *   every request and response buffer reserves from before it buffers; when it is
 *   spent, bodies stream unbuffered (the slot is held, the minimum rate still applies).
 * - `bufferResponse`: a PassThrough between the upstream response and the client
 *   whose readable side holds up to `limits.buffering.response` bytes, so an
 *   upstream response that fits is read at the upstream's speed and its slot freed
 *   while the client drains the buffer.
 * - `RateWatch`: cuts a peer that moves fewer than `minBodyRate` bytes per second,
 *   averaged over `minBodyRateWindow`, during a stretch in which sluice waits on
 *   that peer (and only then: time spent waiting for a slot, the upstream or a
 *   bandwidth shaper is not the client's fault).
 */
import { PassThrough } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import type { Clock, TimerHandle } from '../clock.js';

/** Bytes of buffer space shared by all requests; reserve() before buffering, give() back after. */
export class BufferBudget {
  private used = 0;
  constructor(public limit: number) {}

  /** Reserves n bytes; false (nothing reserved) when the budget cannot cover them. */
  reserve(n: number): boolean {
    if (n <= 0 || this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used = Math.max(0, this.used - n);
  }

  get inUse(): number {
    return this.used;
  }
}

/** Responses up to this many bytes pass straight through (one writable high-water mark). */
const SMALL = 16 * 1024;

/** Statuses and methods whose responses have no body (RFC 9110 §6.4.1). */
function hasNoBody(method: string, status: number): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}

/**
 * The upstream response through a buffer of up to `max` bytes, reserved from
 * `budget`; the upstream response itself when it has no body, is longer than
 * `max` (declared by Content-Length), or the budget is spent. The reservation is
 * given back when the buffer is drained or destroyed.
 */
export function bufferResponse(
  body: IncomingMessage,
  method: string,
  max: number,
  budget: BufferBudget,
): NodeJS.ReadableStream {
  if (max <= 0 || hasNoBody(method, body.statusCode ?? 200)) return body;
  const cl = body.headers['content-length'];
  const declared = cl === undefined ? undefined : Number(cl);
  if (declared !== undefined && (!Number.isFinite(declared) || declared > max)) return body;
  // Small enough for the client connection's own buffers to take at once: nothing to gain.
  if (declared !== undefined && declared <= SMALL) return body;
  const size = declared === undefined ? max : Math.max(1, declared);
  if (!budget.reserve(size)) return body;
  const buf = new PassThrough({ readableHighWaterMark: size, writableHighWaterMark: 16 * 1024 });
  let held = true;
  const giveBack = (): void => {
    if (!held) return;
    held = false;
    budget.give(size);
  };
  buf.once('end', giveBack);
  buf.once('close', giveBack);
  // An upstream that fails mid-body: the buffer ends without its end, so the client
  // never sees a complete response (the exchange then cuts the client's side).
  buf.on('error', noop);
  body.once('error', () => buf.destroy());
  body.once('aborted', () => buf.destroy());
  return body.pipe(buf);
}

export interface RateWatchOptions {
  clock: Clock;
  /** Bytes per second; 0 disables the watch. */
  minRate: number;
  windowMs: number;
  /** Whether sluice is waiting on the peer right now (wants its bytes, or waits for it to read). */
  waitingOnPeer(): boolean;
  /** Called once when the peer is too slow. */
  onSlow(detail: string): void;
}

/**
 * Samples progress a few times per window. A stretch starts when sluice begins to
 * wait on the peer; once it has lasted a window, the bytes moved in it must reach
 * minRate × its length, or the peer is cut. Any moment sluice is not waiting on
 * the peer ends the stretch.
 */
export class RateWatch {
  private bytes = 0;
  private since: number | undefined;
  private timer: TimerHandle | undefined;
  private done = false;
  private readonly tickMs: number;

  constructor(private readonly o: RateWatchOptions) {
    this.tickMs = Math.max(50, Math.min(1000, o.windowMs / 4));
    if (o.minRate > 0 && o.windowMs > 0) this.arm();
  }

  /** Bytes moved to or from the peer. */
  add(n: number): void {
    this.bytes += n;
  }

  stop(): void {
    this.done = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  private arm(): void {
    this.timer = this.o.clock.setTimer(this.tick, this.tickMs);
  }

  private readonly tick = (): void => {
    this.timer = undefined;
    if (this.done) return;
    const now = this.o.clock.now();
    if (!this.o.waitingOnPeer()) this.since = undefined;
    else if (this.since === undefined) {
      this.since = now;
      this.bytes = 0;
    } else {
      const elapsed = now - this.since;
      if (elapsed >= this.o.windowMs) {
        const need = (this.o.minRate * elapsed) / 1000;
        if (this.bytes < need) {
          this.done = true;
          this.o.onSlow(`${this.bytes} bytes in ${Math.round(elapsed)} ms, below the minimum of ${this.o.minRate} bytes/s`);
          return;
        }
        this.since = now;
        this.bytes = 0;
      }
    }
    this.arm();
  };
}

function noop(): void {}
