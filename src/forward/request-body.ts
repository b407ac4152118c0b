/**
 * The request body between the client and the upstream (NGINX
 * proxy_request_buffering): up to `limits.buffering.request` bytes are read
 * before the request asks for an upstream slot, so a client that trickles a small
 * body holds a connection of its own, never a slot. A longer body is read up to
 * the buffer, then streamed once the slot is granted.
 *
 * `RequestBody` is a Readable that stands in for the inbound request wherever
 * http2-proxy reads it: it carries the request's method, URL, headers and socket,
 * replays what it buffered and relays the rest with backpressure. Its own
 * readable buffer is the request buffer (highWaterMark = its reservation).
 *
 * Every body, buffered or not, is watched: a body slower than `minBodyRate`
 * while sluice waits for it, or not complete within `timeouts.requestBody`
 * of the request head, fails the exchange with 408.
 */
import { Readable } from 'node:stream';
import type { Http2ServerRequest } from 'node:http2';
import { ProxyError } from '../errors.js';
import type { Clock, TimerHandle } from '../clock.js';
import type { InboundRequest } from '../accept/context.js';
import { RateWatch, type BufferBudget } from './buffer.js';

export interface RequestBodyOptions {
  clock: Clock;
  /** Bytes to read before the request takes a slot; 0: none. */
  bufferSize: number;
  budget: BufferBudget;
  minRate: number;
  minRateWindowMs: number;
  /** Whole body within this from now. */
  deadlineMs: number;
  /** No byte for this long while sluice waits for one (timeouts.requestBodyIdle). */
  idleMs: number;
  /** More body bytes than this: 413 (a chunked body has no length to check up front). */
  maxBytes: number;
  className: string | undefined;
  /** Called once when the body fails: too slow, past its deadline, or the client aborted. */
  onError(err: ProxyError | Error): void;
}

/** Whether the request has a body still to be read (RFC 9112 §6.3; RFC 9113 §8.1: no END_STREAM on HEADERS). */
export function hasBody(req: InboundRequest): boolean {
  if (req.httpVersionMajor === 2) {
    const stream = (req as Http2ServerRequest).stream;
    return !(stream as { endAfterHeaders?: boolean }).endAfterHeaders && !req.readableEnded;
  }
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const cl = req.headers['content-length'];
  return cl !== undefined && Number(cl) > 0;
}

export class RequestBody extends Readable {
  readonly method: string | undefined;
  readonly url: string | undefined;
  readonly headers: InboundRequest['headers'];
  readonly httpVersion: string;
  readonly httpVersionMajor: number;
  readonly socket: InboundRequest['socket'];
  /** The client's request is complete (every byte read from it). */
  complete = false;
  private reserved = 0;
  private paused = false;
  private failed = false;
  private readonly watch: RateWatch;
  private deadline: TimerHandle | undefined;
  private idle: TimerHandle | undefined;
  private lastByteAt: number;
  private received = 0;
  private filled: (() => void) | undefined;

  constructor(
    readonly source: InboundRequest,
    private readonly o: RequestBodyOptions,
  ) {
    const declared = Number(source.headers['content-length'] ?? NaN);
    const want = Number.isFinite(declared) && declared >= 0 ? Math.min(declared, o.bufferSize) : o.bufferSize;
    const reserved = want > 0 && o.budget.reserve(want) ? want : 0;
    // One byte over the reservation: a body that fits exactly is read to its end, not paused at its last byte.
    super({ highWaterMark: reserved > 0 ? reserved + 1 : 16 * 1024 });
    this.reserved = reserved;
    this.method = source.method;
    this.url = source.url;
    this.headers = source.headers;
    this.httpVersion = source.httpVersion;
    this.httpVersionMajor = source.httpVersionMajor;
    this.socket = source.socket;
    this.watch = new RateWatch({
      clock: o.clock,
      minRate: o.minRate,
      windowMs: o.minRateWindowMs,
      waitingOnPeer: () => !this.paused && !this.complete,
      onSlow: (detail) => this.fail(new ProxyError('REQUEST_TIMEOUT', `request body too slow: ${detail}`, { className: o.className })),
    });
    this.deadline = o.clock.setTimer(() => {
      this.deadline = undefined;
      this.fail(new ProxyError('REQUEST_TIMEOUT', `request body not complete within ${o.deadlineMs} ms`, { className: o.className }));
    }, o.deadlineMs);
    this.lastByteAt = o.clock.now();
    this.idle = o.clock.setTimer(this.checkIdle, o.idleMs);
    source.on('data', this.onData);
    source.once('end', this.onEnd);
    source.once('error', this.onSourceError);
    source.once('aborted', this.onSourceError);
  }

  /** True when this body holds buffer space (it is read before the slot). */
  get buffered(): boolean {
    return this.reserved > 0;
  }

  /** Resolves when the body is complete, the buffer is full, or the body failed. */
  fill(): Promise<void> {
    if (this.complete || this.failed || this.paused) return Promise.resolve();
    return new Promise((resolve) => (this.filled = resolve));
  }

  /** http2-proxy reads `aborted`; the stand-in is aborted once it failed or was destroyed. */
  get aborted(): boolean {
    return this.failed || this.destroyed;
  }

  /** Idle timeouts set by the forward step apply to the client's request. */
  setTimeout(ms: number, cb?: () => void): this {
    this.source.setTimeout(ms, cb);
    return this;
  }

  /** One timer per body, re-armed lazily: a byte only moves lastByteAt. */
  private readonly checkIdle = (): void => {
    this.idle = undefined;
    if (this.complete || this.failed) return;
    const now = this.o.clock.now();
    const quiet = now - this.lastByteAt;
    if (this.paused) this.lastByteAt = now; // waiting on the upstream, not on the client
    else if (quiet >= this.o.idleMs) {
      this.fail(new ProxyError('REQUEST_TIMEOUT', `request body stalled for ${this.o.idleMs} ms`, { className: this.o.className }));
      return;
    }
    this.idle = this.o.clock.setTimer(this.checkIdle, Math.max(10, this.o.idleMs - (now - this.lastByteAt)));
  };

  private readonly onData = (chunk: Buffer): void => {
    this.lastByteAt = this.o.clock.now();
    this.watch.add(chunk.length);
    this.received += chunk.length;
    if (this.received > this.o.maxBytes) {
      this.fail(new ProxyError('BODY_TOO_LARGE', `request body exceeds ${this.o.maxBytes} bytes`, { className: this.o.className }));
      return;
    }
    if (!this.push(chunk)) {
      this.paused = true;
      this.source.pause();
      this.wake();
    }
  };

  private readonly onEnd = (): void => {
    this.complete = true;
    this.stopWatching();
    this.push(null);
    this.wake();
  };

  private readonly onSourceError = (): void => {
    if (this.complete) return;
    this.fail(new Error('client aborted the request body'));
  };

  override _read(): void {
    if (this.paused) {
      this.paused = false;
      this.source.resume();
    }
  }

  private wake(): void {
    const f = this.filled;
    this.filled = undefined;
    f?.();
  }

  private fail(err: ProxyError | Error): void {
    if (this.failed || this.complete) return;
    this.failed = true;
    this.stopWatching();
    this.wake();
    this.o.onError(err);
  }

  private stopWatching(): void {
    this.watch.stop();
    this.deadline?.cancel();
    this.deadline = undefined;
    this.idle?.cancel();
    this.idle = undefined;
  }

  /** Gives the buffer back and detaches from the client's request. */
  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.stopWatching();
    this.source.off('data', this.onData);
    this.source.off('end', this.onEnd);
    this.source.off('error', this.onSourceError);
    this.source.off('aborted', this.onSourceError);
    if (this.reserved > 0) this.o.budget.give(this.reserved);
    this.reserved = 0;
    this.wake();
    cb(err);
  }
}
