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

/** Wraps write/end of one upstream request so its body goes out at the shaped rate. */
class UploadFlow implements Flow {
  need = 0;
  own: TokenBucket | undefined;
  next: Flow | undefined = undefined;
  prev: Flow | undefined = undefined;
  private chunk: Buffer | undefined;
  private offset = 0;
  private chunkCb: WriteCb | undefined;
  private pendingEnd: (() => void) | undefined;
  private blocked = false;
  /** Inside shapedWrite: a synchronous grant must not emit 'drain' (write() returns true instead). */
  private inWrite = false;
  private readonly write: (chunk: Buffer, cb?: WriteCb) => boolean;
  private readonly end: ClientRequest['end'];

  constructor(
    private readonly up: ClientRequest,
    private readonly shaper: Shaper,
  ) {
    this.own = shaper.ownBucket();
    this.write = up.write as (chunk: Buffer, cb?: WriteCb) => boolean;
    this.end = up.end;
    up.write = this.shapedWrite as ClientRequest['write'];
    up.end = this.shapedEnd as ClientRequest['end'];
    up.once('close', this.onClose);
  }

  private readonly onClose = (): void => {
    this.shaper.remove(this);
    this.chunk = undefined;
  };

  private readonly shapedWrite = (data: Buffer | string, enc?: BufferEncoding | WriteCb, cb?: WriteCb): boolean => {
    if (typeof enc === 'function') {
      cb = enc;
      enc = undefined;
    }
    const buf = typeof data === 'string' ? Buffer.from(data, enc) : data;
    if (this.chunk || buf.length === 0) {
      // http2-proxy never writes again before 'drain'; anyone else is served unshaped, in order.
      return this.write.call(this.up, buf, cb);
    }
    this.chunk = buf;
    this.offset = 0;
    this.chunkCb = cb;
    this.blocked = false;
    this.inWrite = true;
    this.shaper.request(this, buf.length);
    this.inWrite = false;
    if (this.chunk) return false;
    return !this.blocked;
  };

  private readonly shapedEnd = (...args: unknown[]): ClientRequest => {
    const last = args[0];
    if (last !== undefined && typeof last !== 'function') {
      this.shapedWrite(last as Buffer | string, typeof args[1] === 'string' ? (args[1] as BufferEncoding) : undefined);
      args = args.filter((a) => typeof a === 'function');
    }
    if (this.chunk) {
      this.pendingEnd = () => (this.end as (...a: unknown[]) => unknown).apply(this.up, args);
      return this.up;
    }
    (this.end as (...a: unknown[]) => unknown).apply(this.up, args);
    return this.up;
  };

  grant(n: number): void {
    const c = this.chunk;
    if (!c) return;
    const start = this.offset;
    this.offset += n;
    const done = this.offset >= c.length;
    const piece = start === 0 && done ? c : c.subarray(start, this.offset);
    const cb = done ? this.chunkCb : undefined;
    if (!this.write.call(this.up, piece, cb)) this.blocked = true;
    if (!done) return;
    this.chunk = undefined;
    this.chunkCb = undefined;
    if (this.pendingEnd) {
      const end = this.pendingEnd;
      this.pendingEnd = undefined;
      end();
      return;
    }
    // Through the shaper: wake the reader, unless the socket itself is full (its own 'drain' will).
    if (!this.blocked && !this.inWrite) this.up.emit('drain');
  }
}

/** Shapes the body going upstream through `up`. */
export function shapeUpload(up: ClientRequest, shaper: Shaper): void {
  new UploadFlow(up, shaper);
}
