/**
 * Shaped streams with backpressure. Neither direction reads faster than the
 * buckets allow nor buffers more than one chunk of the source:
 *
 * - download: a Transform between the upstream response and the client. Its
 *   transform callback is held until the chunk's bytes have been granted, so
 *   pipe() stops reading the upstream socket (TCP backpressure to the upstream).
 * - upload: http2-proxy pipes the request into the upstream ClientRequest with
 *   `if (!write(buf)) req.pause()` and resumes on 'drain'. The shaped write
 *   holds the chunk, returns false, writes it out as bytes are granted, and
 *   emits 'drain' once it is through, so the client is read at the shaped rate.
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { ClientRequest } from 'node:http';
import type { Flow, Shaper, TokenBucket } from './shaper.js';

export class ShapedStream extends Transform implements Flow {
  need = 0;
  own: TokenBucket | undefined;
  next: Flow | undefined = undefined;
  prev: Flow | undefined = undefined;
  private chunk: Buffer | undefined;
  private offset = 0;
  private cb: TransformCallback | undefined;

  constructor(private readonly shaper: Shaper) {
    // Small buffers on both sides: at most ~one upstream chunk is held here.
    super({ highWaterMark: 16 * 1024 });
    this.own = shaper.ownBucket();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.chunk = chunk;
    this.offset = 0;
    this.cb = cb;
    this.shaper.request(this, chunk.length);
  }

  grant(n: number): void {
    const c = this.chunk;
    if (!c) return;
    const start = this.offset;
    this.offset += n;
    this.push(start === 0 && n === c.length ? c : c.subarray(start, this.offset));
    if (this.offset >= c.length) {
      const cb = this.cb!;
      this.chunk = undefined;
      this.cb = undefined;
      cb();
    }
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    this.shaper.remove(this);
    this.chunk = undefined;
    this.cb = undefined;
    cb(err);
  }
}

type WriteCb = (err?: Error | null) => void;

/**
 * Wraps write/end/emit of one upstream request so its body goes out at the
 * shaped rate. The socket's own 'drain' is held back while shaped bytes are
 * pending: passing it on would resume the client early (http2-proxy resumes on
 * any 'drain') and the body would arrive faster than allowed.
 */
class UploadFlow implements Flow {
  need = 0;
  own: TokenBucket | undefined;
  next: Flow | undefined = undefined;
  prev: Flow | undefined = undefined;
  /** Chunks accepted but not yet through the shaper, in order; the head is being granted. */
  private readonly queue: Buffer[] = [];
  private readonly cbs: (WriteCb | undefined)[] = [];
  private offset = 0;
  private pendingEnd: (() => void) | undefined;
  /** The socket refused a write and has not drained since. */
  private blocked = false;
  /** Inside shapedWrite: a synchronous grant must not emit 'drain' (write() returns true instead). */
  private inWrite = false;
  private readonly write: (chunk: Buffer, cb?: WriteCb) => boolean;
  private readonly end: (...args: unknown[]) => unknown;
  private readonly emit: (event: string | symbol, ...args: unknown[]) => boolean;

  constructor(
    private readonly up: ClientRequest,
    private readonly shaper: Shaper,
  ) {
    this.own = shaper.ownBucket();
    this.write = up.write as (chunk: Buffer, cb?: WriteCb) => boolean;
    this.end = up.end as (...args: unknown[]) => unknown;
    this.emit = up.emit;
    up.write = this.shapedWrite as ClientRequest['write'];
    up.end = this.shapedEnd as ClientRequest['end'];
    up.emit = this.shapedEmit as ClientRequest['emit'];
    up.once('close', this.onClose);
  }

  private readonly onClose = (): void => {
    this.shaper.remove(this);
    this.queue.length = 0;
    this.cbs.length = 0;
  };

  private readonly shapedEmit = (event: string | symbol, ...args: unknown[]): boolean => {
    if (event === 'drain') {
      this.blocked = false;
      if (this.queue.length > 0) return false;
    }
    return this.emit.call(this.up, event, ...args);
  };

  private readonly shapedWrite = (data: Buffer | string, enc?: BufferEncoding | WriteCb, cb?: WriteCb): boolean => {
    if (typeof enc === 'function') {
      cb = enc;
      enc = undefined;
    }
    const buf = typeof data === 'string' ? Buffer.from(data, enc) : data;
    if (buf.length === 0 && this.queue.length === 0) return this.write.call(this.up, buf, cb);
    this.queue.push(buf);
    this.cbs.push(cb);
    if (this.queue.length > 1) return false;
    this.offset = 0;
    this.inWrite = true;
    this.shaper.request(this, buf.length);
    this.inWrite = false;
    return this.queue.length === 0 && !this.blocked;
  };

  private readonly shapedEnd = (...args: unknown[]): ClientRequest => {
    const last = args[0];
    if (last !== undefined && typeof last !== 'function') {
      this.shapedWrite(last as Buffer | string, typeof args[1] === 'string' ? (args[1] as BufferEncoding) : undefined);
      args = args.filter((a) => typeof a === 'function');
    }
    if (this.queue.length > 0) this.pendingEnd = () => this.end.apply(this.up, args);
    else this.end.apply(this.up, args);
    return this.up;
  };

  grant(n: number): void {
    const c = this.queue[0];
    if (!c) return;
    const start = this.offset;
    this.offset += n;
    const done = this.offset >= c.length;
    const piece = start === 0 && done ? c : c.subarray(start, this.offset);
    const cb = done ? this.cbs[0] : undefined;
    if (!this.write.call(this.up, piece, cb)) this.blocked = true;
    if (!done) return;
    // Short queue (http2-proxy writes one chunk per 'drain'): shift is O(1) in practice.
    this.queue.shift();
    this.cbs.shift();
    this.offset = 0;
    const next = this.queue[0];
    if (next) {
      this.shaper.request(this, next.length);
      return;
    }
    if (this.pendingEnd) {
      const end = this.pendingEnd;
      this.pendingEnd = undefined;
      end();
      return;
    }
    // Through the shaper: wake the reader, unless the socket itself is full (its own 'drain' will).
    if (!this.blocked && !this.inWrite) this.emit.call(this.up, 'drain');
  }
}

/** Shapes the body going upstream through `up`. */
export function shapeUpload(up: ClientRequest, shaper: Shaper): void {
  new UploadFlow(up, shaper);
}
