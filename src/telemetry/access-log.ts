/**
 * Access log: one pino line per finished request at `info` (msg "access"),
 * like an nginx/Envoy access log but JSON. Fields:
 *   method, path, status, class, route, upstream, target (URL of the upstream
 *   target tried last; '' when not forwarded), protocol ("1.1" | "2.0"),
 *   bytesIn / bytesOut (body bytes to the upstream / to the client),
 *   queueMs, upstreamMs (to response headers), totalMs, outcome,
 *   client (address after trustedProxies), trace_id, request_id.
 * Policy `log: { access: true, accessSample: 1 }`: off, or a fraction of the
 * requests; answers that are not a plain success (outcome other than
 * forwarded, or status >= 500) are always logged. Sampling uses Math.random
 * (not the clock) so it is independent of timing.
 */
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Clock } from '../clock.js';
import type { RequestContext } from '../accept/context.js';
import type { ForwardHooks } from '../forward/proxy.js';
import type { Policy } from '../policy/types.js';
import type { Logger } from './log.js';

export class AccessLog {
  constructor(
    private readonly log: Logger,
    private readonly clock: Clock,
    private readonly policy: () => Policy,
  ) {}

  /** PipelineOptions.onDone, after telemetry's own (which ends the spans whose ids the line carries). */
  readonly record = (ctx: RequestContext): void => {
    const cfg = this.policy().log;
    if (!cfg.access || !this.log.isLevelEnabled('info')) return;
    const plain = ctx.outcome === 'forwarded' && ctx.status < 500;
    if (plain && cfg.accessSample < 1 && Math.random() >= cfg.accessSample) return;
    let bytesOut = ctx.bytesOut;
    if (bytesOut === 0 && ctx.outcome !== 'forwarded') {
      // sluice's own answer: its body length is in the header it wrote.
      const len = (ctx.res as { getHeader?(n: string): unknown }).getHeader?.('content-length');
      if (typeof len === 'number' || typeof len === 'string') bytesOut = Number(len) || 0;
    }
    this.log.info(
      {
        method: ctx.method,
        path: ctx.path,
        host: ctx.host,
        status: ctx.status,
        class: ctx.klass?.name ?? null,
        route: ctx.route?.name ?? null,
        upstream: ctx.route?.upstream.name ?? null,
        target: ctx.target,
        protocol: ctx.req.httpVersion,
        bytesIn: ctx.bytesIn,
        bytesOut,
        queueMs: round(ctx.queueMs),
        upstreamMs: round(ctx.upstreamMs),
        totalMs: round(this.clock.now() - ctx.start),
        outcome: ctx.outcome,
        client: ctx.clientIp || ctx.peer,
        trace_id: ctx.trace?.traceId ?? null,
        request_id: ctx.requestId,
      },
      'access',
    );
  };
}

const kCtx = Symbol('sluice.bytesOut');
type Counted = NodeJS.ReadableStream & { [kCtx]?: RequestContext };

/** 'data' on a response body: module-level, so no closure per request. */
function countOut(this: Counted, c: Buffer | string): void {
  const ctx = this[kCtx];
  if (ctx) ctx.bytesOut += typeof c === 'string' ? Buffer.byteLength(c) : c.length;
}

/** The given hooks plus body byte counts on ctx (bytesIn to the upstream, bytesOut to the client). */
export function withByteCounts(hooks: ForwardHooks): ForwardHooks {
  const prevBody = hooks.responseBody;
  const prevReq = hooks.requestBody;
  return {
    ...hooks,
    responseBody(ctx: RequestContext, body: IncomingMessage): NodeJS.ReadableStream {
      const out = prevBody ? prevBody(ctx, body) : body;
      // A second 'data' listener beside the pipe sees the same chunks; pause/resume still apply.
      (out as Counted)[kCtx] = ctx;
      out.on('data', countOut);
      return out;
    },
    requestBody(ctx: RequestContext, up: ClientRequest): void {
      prevReq?.(ctx, up);
      const write = up.write;
      up.write = function (this: ClientRequest, chunk: unknown, ...rest: unknown[]): boolean {
        if (chunk) ctx.bytesIn += typeof chunk === 'string' ? Buffer.byteLength(chunk) : (chunk as Buffer).length;
        return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
      } as ClientRequest['write'];
    },
  };
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
