/**
 * The request pipeline, orchestration only: accept → classify → admit →
 * schedule → (shape) → forward. Stages that outlive a policy (scheduler,
 * admission, shaping, the buffer budget) live here and are updated on reload;
 * everything derived from one policy is a `Runtime` (runtime.ts), swapped
 * atomically and pinned by each request at arrival. Each request is an
 * `Exchange` (exchange.ts), one state machine for HTTP/1.1, HTTP/2 and WebSocket
 * alike, which ends exactly once.
 */
import { assignRequestId } from '../forward/request-id.js';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { ProxyError } from '../errors.js';
import type { Clock } from '../clock.js';
import type { Policy } from '../policy/types.js';
import { RequestContext, type InboundRequest, type InboundResponse, type Outcome } from '../accept/context.js';
import { Scheduler } from '../schedule/scheduler.js';
import type { ForwardHooks, ForwardOptions } from '../forward/proxy.js';
import type { Logger } from '../telemetry/log.js';
import { Admission } from '../admit/index.js';
import { Shaping, type Direction } from '../shape/index.js';
import { BufferBudget, bufferResponse } from '../forward/buffer.js';
import { Runtime } from './runtime.js';
import { Exchange, exchangeOf } from './exchange.js';

export { Runtime } from './runtime.js';
export { Exchange, exchangeOf, type ExchangeState } from './exchange.js';

export interface PipelineOptions {
  clock: Clock;
  log: Logger;
  hooks?: ForwardHooks;
  /** Called once per finished request (metrics, tracing). */
  onDone?(ctx: RequestContext): void;
  /** Metrics hook: bytes let through a class's bandwidth shaper. */
  onShapedBytes?(className: string, direction: Direction, n: number): void;
}

export class Pipeline {
  private rt: Runtime;
  readonly scheduler: Scheduler;
  readonly admission: Admission;
  readonly shaping: Shaping;
  /** Request and response buffers of all requests together (limits.buffering.budget). */
  readonly budget: BufferBudget;
  readonly clock: Clock;
  readonly log: Logger;
  readonly forwardOptions: ForwardOptions;
  /** Exchanges not yet settled, in any state (shutdown answers the waiting ones). */
  readonly live = new Set<Exchange>();
  private readonly onDone: ((ctx: RequestContext) => void) | undefined;
  private readonly debug: boolean;

  constructor(policy: Policy, opts: PipelineOptions) {
    this.clock = opts.clock;
    this.log = opts.log;
    this.onDone = opts.onDone;
    this.debug = opts.log.isLevelEnabled('debug');
    this.rt = new Runtime(policy, undefined, opts.clock);
    this.scheduler = new Scheduler(policy, opts.clock);
    this.admission = new Admission(policy, { clock: opts.clock, log: opts.log });
    this.shaping = new Shaping(policy, {
      clock: opts.clock,
      ...(opts.onShapedBytes ? { onShapedBytes: opts.onShapedBytes } : {}),
    });
    this.budget = new BufferBudget(policy.limits.buffering.budget);
    this.forwardOptions = {
      clock: opts.clock,
      // The request's own policy generation decides whom to trust, never the newest one.
      peerTrusted: (ctx) => (exchangeOf(ctx)?.rt ?? this.rt).clientIp.peerTrusted(ctx.peer),
      hooks: withStages(opts.hooks ?? {}, this.shaping, this.budget),
    };
  }

  get runtime(): Runtime {
    return this.rt;
  }

  /** Swaps in a new policy; requests already admitted keep the runtime they hold. */
  apply(policy: Policy): void {
    const old = this.rt;
    this.rt = new Runtime(policy, old, this.clock);
    this.scheduler.update(policy);
    this.admission.update(policy);
    this.shaping.update(policy);
    this.budget.limit = policy.limits.buffering.budget;
    old.retire(this.rt);
  }

  /** Closes what outlives requests: Redis connections, limiter sweepers, shaper timers. */
  close(): void {
    this.admission.close();
    this.shaping.close();
  }

  /** Set when shutdown begins: HTTP/1.1 answers then ask the client to close the connection. */
  draining = false;

  /**
   * Shutdown: every request still waiting (held by a rate limit, reading its body,
   * queued, or being classified) is answered 503 now. Forwarding ones go on.
   */
  refuseWaiting(detail: string): void {
    this.scheduler.rejectAll('SHUTTING_DOWN', detail);
    for (const ex of [...this.live]) {
      ex.refuseIfWaiting(new ProxyError('SHUTTING_DOWN', detail, { className: ex.ctx.klass?.name, retryAfterMs: 1000 }));
    }
  }

  readonly handle = (req: InboundRequest, res: InboundResponse): void => {
    const rt = this.rt;
    const ctx = new RequestContext(req, res, this.clock.now(), rt.policy.pathNormalization);
    req.on('error', noop);
    res.on('error', noop);
    if (this.draining && req.httpVersionMajor === 1) res.setHeader('connection', 'close');
    assignRequestId(ctx, rt.clientIp.peerTrusted(ctx.peer));
    new Exchange(ctx, rt, this).start();
  };

  /** WebSocket handshakes: the same exchange as any request, forwarded as a tunnel. */
  readonly upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', noop);
    const rt = this.rt;
    const ctx = new RequestContext(req, socket as unknown as InboundResponse, this.clock.now(), rt.policy.pathNormalization);
    assignRequestId(ctx, rt.clientIp.peerTrusted(ctx.peer));
    new Exchange(ctx, rt, this, { socket, head }).start();
  };

  /** Telemetry and the request log line; called by Exchange.settle, once per request. */
  finish(ctx: RequestContext, outcome: Outcome): void {
    if (ctx.outcome !== undefined) return;
    ctx.outcome = outcome;
    // Telemetry first: it ends the spans, whose ids the request log line carries.
    this.onDone?.(ctx);
    if (this.debug) {
      this.log.debug(
        {
          id: ctx.id,
          method: ctx.method,
          host: ctx.host,
          path: ctx.path,
          status: ctx.status,
          route: ctx.route?.name,
          class: ctx.klass?.name,
          outcome,
          queueMs: round(ctx.queueMs),
          upstreamMs: round(ctx.upstreamMs),
          totalMs: round(this.clock.now() - ctx.start),
          client: ctx.clientIp,
          trace_id: ctx.trace?.traceId,
          span_id: ctx.trace?.spanId,
        },
        'request',
      );
    }
  }
}

/**
 * The caller's hooks plus the stages that act on bodies. Response:
 * upstream → response buffer → caller's hook → class download shaper → client;
 * the buffer comes first so the upstream is read at its own speed and its slot
 * freed (Exchange.upstreamDone) while shaping paces the client. Request: the
 * caller's hook, then the class upload shaper.
 */
function withStages(hooks: ForwardHooks, shaping: Shaping, budget: BufferBudget): ForwardHooks {
  const prevBody = hooks.responseBody;
  const prevReq = hooks.requestBody;
  return {
    ...hooks,
    // The upstream response was read to its end: its slot goes back (forward/proxy.ts calls this a tick
    // after 'end', once Node has returned the socket to the agent, so the next request reuses it).
    upstreamDone: (ctx) => exchangeOf(ctx)?.upstreamDone(),
    responseBody: (ctx, proxyRes) => {
      const ex = exchangeOf(ctx);
      const max = ex ? ex.rt.policy.limits.buffering.response : 0;
      const buffered = bufferResponse(proxyRes, ctx.method, max, budget) as IncomingMessage;
      const body = prevBody ? (prevBody(ctx, buffered) as IncomingMessage) : buffered;
      const out = shaping.responseBody(ctx, body);
      if (ex) {
        ex.relaying(buffered, body, out);
        ex.watchClientReads(out);
      }
      return out;
    },
    requestBody: prevReq
      ? (ctx, up) => {
          prevReq(ctx, up);
          shaping.requestBody(ctx, up);
        }
      : shaping.requestBody,
  };
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

function noop(): void {}
