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
import { pino } from 'pino';
import type { Logger } from './log.js';

/** pino's internals the fast line writer reads (stable across pino 7-10). */
const P = pino.symbols as unknown as { streamSym: symbol; chindingsSym: symbol; lsCacheSym: symbol; timeSym: symbol };

interface LineSink {
  /** `{"level":30` */
  prefix: string;
  time: () => string;
  /** The logger's bindings, e.g. `,"name":"sluice","worker":2`. */
  chindings: string;
  stream: { write(s: string): unknown };
}

/**
 * Where a pino logger writes, to write the access line the way pino would
 * (same fields, same order, same text) without building an object for pino to
 * walk key by key. Undefined for anything but a plain pino logger: those get log.info.
 */
function sinkOf(log: Logger): LineSink | undefined {
  const l = log as unknown as Record<symbol, unknown>;
  const stream = l[P.streamSym] as { write?: unknown } | undefined;
  const prefix = (l[P.lsCacheSym] as Record<number, string> | undefined)?.[30];
  const time = l[P.timeSym];
  const chindings = l[P.chindingsSym];
  if (!stream || typeof stream.write !== 'function' || typeof prefix !== 'string' || typeof time !== 'function' || typeof chindings !== 'string') return undefined;
  return { prefix, time: time as () => string, chindings, stream: stream as LineSink['stream'] };
}

const str = (v: string | null): string => (v === null ? 'null' : JSON.stringify(v));

export class AccessLog {
  private readonly sink: LineSink | undefined;

  constructor(
    private readonly log: Logger,
    private readonly clock: Clock,
    private readonly policy: () => Policy,
  ) {
    this.sink = sinkOf(log);
  }

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
    const route = ctx.route;
    const className = ctx.klass?.name ?? null;
    const routeName = route?.name ?? null;
    const upstream = route?.upstream.name ?? null;
    const queueMs = round(ctx.queueMs);
    const upstreamMs = round(ctx.upstreamMs);
    const totalMs = round(this.clock.now() - ctx.start);
    const client = ctx.clientIp || ctx.peer;
    const traceId = ctx.trace?.traceId ?? null;
    const k = this.sink;
    if (k) {
      // One string, as pino would have written it for log.info({...}, 'access').
      k.stream.write(
        `${k.prefix}${k.time()}${k.chindings},"method":${str(ctx.method)},"path":${str(ctx.path)},"host":${str(ctx.host)},"status":${ctx.status}` +
          `,"class":${str(className)},"route":${str(routeName)},"upstream":${str(upstream)},"target":${str(ctx.target)},"protocol":${str(ctx.req.httpVersion)}` +
          `,"bytesIn":${ctx.bytesIn},"bytesOut":${bytesOut},"queueMs":${queueMs},"upstreamMs":${upstreamMs},"totalMs":${totalMs}` +
          `,"outcome":${str(ctx.outcome ?? null)},"client":${str(client)},"trace_id":${str(traceId)},"request_id":${str(ctx.requestId)},"msg":"access"}\n`,
      );
      return;
    }
    this.log.info(
      {
        method: ctx.method,
        path: ctx.path,
        host: ctx.host,
        status: ctx.status,
        class: className,
        route: routeName,
        upstream,
        target: ctx.target,
        protocol: ctx.req.httpVersion,
        bytesIn: ctx.bytesIn,
        bytesOut,
        queueMs,
        upstreamMs,
        totalMs,
        outcome: ctx.outcome,
        client,
        trace_id: traceId,
        request_id: ctx.requestId,
      },
      'access',
    );
  };
}

const kCtx = Symbol('sluice.bytesOut');
const kWrite = Symbol('sluice.write');
type WriteFn = (chunk: unknown, encoding?: unknown, cb?: unknown) => boolean;
type Counted = { [kCtx]?: RequestContext; [kWrite]?: WriteFn; write: WriteFn };

/**
 * The client response's write, counting body bytes on the way: module-level (no closure),
 * and no second 'data' listener on the body (which would also cost a resume() turn).
 */
function countingWrite(this: Counted, chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
  const ctx = this[kCtx];
  if (ctx && chunk) ctx.bytesOut += typeof chunk === 'string' ? Buffer.byteLength(chunk) : (chunk as Buffer).length;
  return this[kWrite]!.call(this, chunk, encoding, cb);
}

const kIn = Symbol('sluice.writeUp');

/** The upstream request's write, counting request body bytes (as countingWrite). */
function countingUpWrite(this: Counted & { [kIn]?: WriteFn }, chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
  const ctx = this[kCtx];
  if (ctx && chunk) ctx.bytesIn += typeof chunk === 'string' ? Buffer.byteLength(chunk) : (chunk as Buffer).length;
  return this[kIn]!.call(this, chunk, encoding, cb);
}

/** The given hooks plus body byte counts on ctx (bytesIn to the upstream, bytesOut to the client). */
export function withByteCounts(hooks: ForwardHooks): ForwardHooks {
  const prevBody = hooks.responseBody;
  const prevReq = hooks.requestBody;
  return {
    ...hooks,
    responseBody(ctx: RequestContext, body: IncomingMessage): NodeJS.ReadableStream {
      const out = prevBody ? prevBody(ctx, body) : body;
      // What is piped to the client is counted as the client's response is written.
      const res = ctx.res as unknown as Counted;
      res[kCtx] = ctx;
      if (res.write !== countingWrite) {
        res[kWrite] = res.write;
        res.write = countingWrite;
      }
      return out;
    },
    requestBody(ctx: RequestContext, up: ClientRequest): void {
      prevReq?.(ctx, up);
      const u = up as unknown as Counted & { [kIn]?: WriteFn };
      u[kCtx] = ctx;
      u[kIn] = u.write;
      u.write = countingUpWrite;
    },
  };
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
