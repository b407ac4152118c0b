/**
 * The shape stage: per-class bandwidth (bandwidth.download / upload, shared by
 * all of a class's requests, with optional perRequest caps). Provides the
 * forwarding hooks that put a request's body and response through the
 * class's shapers. Shapers survive a reload when their class's bandwidth
 * settings did not change.
 */
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Clock } from '../clock.js';
import type { RequestContext } from '../accept/context.js';
import type { BandwidthPolicy, Policy } from '../policy/types.js';
import { Shaper } from './shaper.js';
import { ShapedStream, shapeUpload } from './streams.js';

export { Shaper, TokenBucket, defaultBurst, QUANTUM, type Flow } from './shaper.js';
export { ShapedStream, shapeUpload } from './streams.js';

export type Direction = 'download' | 'upload';

export interface ShapingOptions {
  clock: Clock;
  /** Metrics hook: bytes let through a shaper (the telemetry stage's recordShapedBytes). */
  onShapedBytes?(className: string, direction: Direction, n: number): void;
}

interface ClassShapers {
  readonly policy: BandwidthPolicy;
  readonly download: Shaper | undefined;
  readonly upload: Shaper | undefined;
}

function same(a: BandwidthPolicy, b: BandwidthPolicy): boolean {
  return (
    a.download === b.download &&
    a.upload === b.upload &&
    a.burst === b.burst &&
    a.perRequest.download === b.perRequest.download &&
    a.perRequest.upload === b.perRequest.upload
  );
}

export class Shaping {
  private classes = new Map<string, ClassShapers>();

  constructor(
    policy: Policy,
    private readonly opts: ShapingOptions,
  ) {
    this.update(policy);
  }

  update(policy: Policy): void {
    const next = new Map<string, ClassShapers>();
    for (const k of policy.classes) {
      const b = k.bandwidth;
      if (!b) continue;
      const old = this.classes.get(k.name);
      if (old && same(old.policy, b)) {
        next.set(k.name, old);
        continue;
      }
      next.set(k.name, {
        policy: b,
        download: this.shaper(k.name, 'download', b.download, b.perRequest.download, b.burst),
        upload: this.shaper(k.name, 'upload', b.upload, b.perRequest.upload, b.burst),
      });
    }
    // Old shapers keep serving the flows they have; they hold no timer once those are done.
    this.classes = next;
  }

  private shaper(name: string, dir: Direction, rate: number | undefined, perRequest: number | undefined, burst: number | undefined): Shaper | undefined {
    if (rate === undefined && perRequest === undefined) return undefined;
    const rec = this.opts.onShapedBytes;
    return new Shaper(this.opts.clock, rate, burst, perRequest, rec ? (n) => rec(name, dir, n) : undefined);
  }

  /** Shapers of a class, for status and tests. */
  shapers(className: string): { download: Shaper | undefined; upload: Shaper | undefined } | undefined {
    return this.classes.get(className);
  }

  /** ForwardHooks.responseBody: the response through the class's download shaper. */
  readonly responseBody = (ctx: RequestContext, body: IncomingMessage): NodeJS.ReadableStream => {
    const s = ctx.klass && this.classes.size > 0 ? this.classes.get(ctx.klass.name)?.download : undefined;
    if (!s) return body;
    const shaped = new ShapedStream(s);
    body.on('error', (err) => shaped.destroy(err));
    ctx.res.once('close', () => {
      if (!shaped.writableFinished) shaped.destroy();
    });
    return body.pipe(shaped);
  };

  /** ForwardHooks.requestBody: the request body through the class's upload shaper. */
  readonly requestBody = (ctx: RequestContext, up: ClientRequest): void => {
    const s = ctx.klass && this.classes.size > 0 ? this.classes.get(ctx.klass.name)?.upload : undefined;
    if (s) shapeUpload(up, s);
  };

  close(): void {
    for (const c of this.classes.values()) {
      c.download?.close();
      c.upload?.close();
    }
  }
}
