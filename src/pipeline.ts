/**
 * The request pipeline: accept → classify → admit → schedule → (shape) → forward.
 * Stages are built per policy (`Runtime`) and swapped atomically on reload; a
 * request keeps the runtime it started with. Every request ends exactly once:
 * forwarded, rejected with a reason, or aborted by the client.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import proxy from 'http2-proxy';
import { ErrorCodes, ProxyError } from './errors.js';
import type { Clock } from './clock.js';
import type { Policy } from './policy/types.js';
import { RequestContext, type InboundRequest, type InboundResponse, type Outcome } from './accept/context.js';
import { sendProblem } from './accept/problem.js';
import { Router } from './classify/route.js';
import { Classifier, type Decision } from './classify/classifier.js';
import { ClientIp } from './classify/client-ip.js';
import { IdentityVerifier } from './classify/identity.js';
import { Scheduler, type Job, type Permit, type RejectReason, type Entry } from './schedule/scheduler.js';
import { holdPermit, releasePermit } from './schedule/handoff.js';
import { UpstreamPool } from './forward/pool.js';
import { forward, type ForwardHooks, type ForwardOptions } from './forward/proxy.js';
import { addForwardedHeaders } from './forward/headers.js';
import type { Logger } from './telemetry/log.js';
import { Admission, type AdmitDecision, type ClassLimiter } from './admit/index.js';
import { Shaping, type Direction } from './shape/index.js';
import type { TimerHandle } from './clock.js';

/** Everything derived from one policy. Immutable once built. */
export class Runtime {
  readonly router: Router;
  readonly classifier: Classifier;
  readonly clientIp: ClientIp;
  readonly identity: IdentityVerifier | undefined;
  readonly pools: ReadonlyMap<string, UpstreamPool>;

  constructor(
    readonly policy: Policy,
    previous: Runtime | undefined,
    clock: Clock,
  ) {
    this.router = new Router(policy.routes);
    this.classifier = new Classifier(policy);
    this.clientIp = new ClientIp(policy.trustedProxies);
    this.identity = policy.identity ? new IdentityVerifier(policy.identity.jwt) : undefined;
    const pools = new Map<string, UpstreamPool>();
    for (const u of policy.upstreams.values()) {
      const old = previous?.pools.get(u.name);
      if (old && old.canServe(u)) {
        // Timeouts and outlier settings are read per request, so the new ones apply at once.
        old.upstream = u;
        pools.set(u.name, old);
      } else pools.set(u.name, new UpstreamPool(u, clock));
    }
    this.pools = pools;
  }

  /** Route, client address, identity and class of a request (also used by `sluice explain`). */
  async decide(ctx: RequestContext): Promise<Decision | undefined> {
    const strip = this.policy.trustedHeaders;
    if (strip.length > 0 && !this.clientIp.peerTrusted(ctx.peer)) {
      // Only trusted proxies may set these; from anyone else they are forgeries.
      for (const h of strip) delete ctx.req.headers[h];
    }
    ctx.route = this.router.match(ctx);
    if (!ctx.route) return undefined;
    ctx.clientIp = this.clientIp.of(ctx.req, ctx.peer);
    if (this.identity && this.classifier.needsClaims) ctx.claims = await this.identity.verify(ctx.req);
    const d = this.classifier.classify(ctx);
    ctx.klass = d.klass;
    ctx.rule = d.rule;
    return d;
  }

  /** Pools that `next` no longer uses wind down as their requests finish. */
  retire(next: Runtime): void {
    for (const [name, pool] of this.pools) if (next.pools.get(name) !== pool) pool.retire();
  }

  close(): void {
    for (const pool of this.pools.values()) pool.close();
  }
}

export interface PipelineOptions {
  clock: Clock;
  log: Logger;
  hooks?: ForwardHooks;
  /** Called once per finished request (metrics, tracing). */
  onDone?(ctx: RequestContext): void;
  /** Metrics hook: bytes let through a class's bandwidth shaper. */
  onShapedBytes?(className: string, direction: Direction, n: number): void;
}

/** One request waiting for a slot and then forwarded; the scheduler's Job. */
class Exchange implements Job {
  queueEntry: Entry | undefined;
  private settled = false;
  /** Set while held back by a rate limit with onLimit: queue. */
  delay: TimerHandle | undefined;
  private delayKey = '';
  private delayLimiter: ClassLimiter | undefined;

  constructor(
    readonly ctx: RequestContext,
    readonly rt: Runtime,
    readonly p: Pipeline,
  ) {}

  /** Client left: drop out of the queue at once; an in-flight forward notices by itself. */
  readonly onClose = (): void => {
    if (this.delay) {
      this.delay.cancel();
      this.delay = undefined;
      this.delayLimiter?.refund(this.delayKey);
      this.p.finish(this.ctx, 'client_abort');
      return;
    }
    if (this.queueEntry) {
      this.p.scheduler.cancel(this);
      this.p.finish(this.ctx, 'client_abort');
    }
  };

  /** Holds the request back `d.ms` (its token is reserved), then submits it to the scheduler. */
  hold(d: Extract<AdmitDecision, { kind: 'delay' }>): void {
    this.delayKey = d.key;
    this.delayLimiter = d.limiter;
    this.delay = this.p.clock.setTimer(this.release, d.ms);
  }

  private readonly release = (): void => {
    this.delay = undefined;
    if (this.ctx.outcome !== undefined) return;
    this.p.scheduler.submit(this, this.ctx.klass!, this.ctx.route!.upstream);
  };

  grant(permit: Permit): void {
    const ctx = this.ctx;
    ctx.dequeuedAt = this.p.clock.now();
    if (ctx.queuedAt === 0) ctx.queuedAt = ctx.dequeuedAt;
    void this.run(permit);
  }

  private async run(permit: Permit): Promise<void> {
    const ctx = this.ctx;
    holdPermit(ctx, permit);
    try {
      const pool = this.rt.pools.get(ctx.route!.upstream.name)!;
      const err = await forward(ctx, pool, this.p.forwardOptions, this.rt.policy);
      if (err) {
        sendProblem(ctx.res, err);
        ctx.status = err.status;
        this.p.finish(ctx, outcomeOf(err));
      } else {
        this.p.finish(ctx, ctx.res.writableFinished ? 'forwarded' : 'client_abort');
      }
    } catch (err) {
      this.p.log.error({ err }, 'forwarding failed unexpectedly');
      sendProblem(ctx.res, new ProxyError('UPSTREAM_RESET', 'internal forwarding error', { className: ctx.klass?.name }));
      this.p.finish(ctx, 'upstream_error');
    } finally {
      releasePermit(ctx);
      ctx.res.off('close', this.onClose);
    }
  }

  reject(err: ProxyError, reason: RejectReason): void {
    if (this.settled) return;
    this.settled = true;
    this.ctx.res.off('close', this.onClose);
    this.ctx.status = err.status;
    sendProblem(this.ctx.res, err);
    this.p.finish(this.ctx, outcomeOfReason(reason));
  }
}

export class Pipeline {
  private rt: Runtime;
  readonly scheduler: Scheduler;
  readonly admission: Admission;
  readonly shaping: Shaping;
  readonly clock: Clock;
  readonly log: Logger;
  readonly forwardOptions: ForwardOptions;
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
    this.forwardOptions = {
      clock: opts.clock,
      peerTrusted: (ctx) => this.rt.clientIp.peerTrusted(ctx.peer),
      hooks: { ...withShaping(opts.hooks ?? {}, this.shaping), upstreamDone: releasePermit },
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
    old.retire(this.rt);
  }

  /** Closes what outlives requests: Redis connections, limiter sweepers, shaper timers. */
  close(): void {
    this.admission.close();
    this.shaping.close();
  }

  /** Set when shutdown begins: HTTP/1.1 answers then ask the client to close the connection. */
  draining = false;

  readonly handle = (req: InboundRequest, res: InboundResponse): void => {
    const ctx = new RequestContext(req, res, this.clock.now());
    req.on('error', noop);
    res.on('error', noop);
    if (this.draining && req.httpVersionMajor === 1) res.setHeader('connection', 'close');
    void this.admit(ctx, this.rt);
  };

  private async admit(ctx: RequestContext, rt: Runtime): Promise<void> {
    const maxUrl = rt.policy.limits.maxUrlLength;
    if ((ctx.req.url?.length ?? 0) > maxUrl) {
      ctx.status = 414;
      sendProblem(ctx.res, new ProxyError('URI_TOO_LONG', `request target of ${ctx.req.url!.length} characters exceeds ${maxUrl}`));
      this.finish(ctx, 'rejected');
      return;
    }
    const d = await rt.decide(ctx);
    if (!d) {
      ctx.status = 404;
      sendProblem(ctx.res, new ProxyError('NO_ROUTE', `no route for ${ctx.method} ${ctx.host}${ctx.path}`));
      this.finish(ctx, 'no_route');
      return;
    }
    if (ctx.res.destroyed) {
      this.finish(ctx, 'client_abort');
      return;
    }
    const max = Math.min(ctx.route!.maxBodySize, d.klass.maxBodySize);
    ctx.maxBodySize = max;
    if (max !== Infinity) {
      // A declared length over the limit is refused before it takes a slot or reaches the upstream.
      const declared = Number(ctx.req.headers['content-length'] ?? 0);
      if (declared > max) {
        ctx.status = 413;
        sendProblem(ctx.res, new ProxyError('BODY_TOO_LARGE', `request body of ${declared} bytes exceeds ${max}`, { className: d.klass.name }));
        this.finish(ctx, 'rejected');
        return;
      }
    }
    const ex = new Exchange(ctx, rt, this);
    ctx.res.once('close', ex.onClose);
    ctx.queuedAt = this.clock.now();
    if (d.klass.rateLimit) {
      let v = this.admission.admit(ctx, d.klass);
      if (v instanceof Promise) {
        v = await v;
        if (ctx.res.destroyed) {
          // The client left while Redis answered.
          ctx.res.off('close', ex.onClose);
          this.finish(ctx, 'client_abort');
          return;
        }
      }
      if (v.kind === 'reject') {
        const cs = this.scheduler.classState(d.klass.name);
        if (cs) cs.rejected.rate_limited++;
        ex.reject(v.error, 'rate_limited');
        return;
      }
      if (v.kind === 'delay') {
        ex.hold(v);
        return;
      }
    }
    this.scheduler.submit(ex, d.klass, ctx.route!.upstream);
  }

  /** WebSocket upgrades: routed, classified and counted against the same caps as requests. */
  readonly upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', noop);
    const rt = this.rt;
    const ctx = new RequestContext(req, socketAsResponse(socket), this.clock.now());
    void (async () => {
      const d = await rt.decide(ctx);
      if (!d) {
        writeRawProblem(socket, new ProxyError('NO_ROUTE', `no route for ${ctx.method} ${ctx.host}${ctx.path}`));
        this.finish(ctx, 'no_route');
        return;
      }
      const job: Job = {
        grant: (permit) => {
          ctx.dequeuedAt = this.clock.now();
          socket.off('close', onClose);
          const target = rt.pools.get(ctx.route!.upstream.name)!.pick();
          const done = (err?: unknown): void => {
            permit.release();
            if (err && !socket.destroyed) {
              const e = err as NodeJS.ErrnoException;
              writeRawProblem(socket, new ProxyError('UPSTREAM_UNREACHABLE', `websocket upstream failed: ${e.code ?? e.message}`, { className: d.klass.name }));
              this.finish(ctx, 'upstream_error');
            } else this.finish(ctx, 'forwarded');
          };
          proxy
            .ws(req, socket as never, head, {
              hostname: target.target.hostname,
              port: target.target.port,
              onReq: async (_req: unknown, options: { agent?: unknown; headers?: Record<string, unknown> }) => {
                options.headers ??= {};
                addForwardedHeaders(options.headers as never, ctx, rt.clientIp.peerTrusted(ctx.peer));
              },
            } as never)
            ?.then(() => done(), done);
        },
        reject: (err, reason) => {
          socket.off('close', onClose);
          writeRawProblem(socket, err);
          this.finish(ctx, outcomeOfReason(reason));
        },
      };
      const onClose = (): void => {
        if (job.queueEntry) {
          this.scheduler.cancel(job);
          this.finish(ctx, 'client_abort');
        }
      };
      socket.once('close', onClose);
      ctx.queuedAt = this.clock.now();
      this.scheduler.submit(job, d.klass, ctx.route!.upstream);
    })();
  };

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

/** A scheduler rejection's outcome: its reason, except shutdown, which is a plain rejection. */
function outcomeOfReason(reason: RejectReason): Outcome {
  return reason === 'shutting_down' ? 'rejected' : reason;
}

function outcomeOf(err: ProxyError): Outcome {
  switch (err.code) {
    case 'UPSTREAM_TIMEOUT':
      return 'upstream_timeout';
    case 'BODY_TOO_LARGE':
    case 'REQUEST_TIMEOUT':
      return 'rejected';
    default:
      return 'upstream_error';
  }
}

/** The caller's hooks plus bandwidth shaping (shaping runs after any responseBody hook given). */
function withShaping(hooks: ForwardHooks, shaping: Shaping): ForwardHooks {
  const prevBody = hooks.responseBody;
  const prevReq = hooks.requestBody;
  return {
    ...hooks,
    responseBody: prevBody ? (ctx, body) => shaping.responseBody(ctx, prevBody(ctx, body) as IncomingMessage) : shaping.responseBody,
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

/** A WebSocket request has a socket, not a response; give the context something with the same shape. */
function socketAsResponse(socket: Duplex): InboundResponse {
  return socket as unknown as InboundResponse;
}

function writeRawProblem(socket: Duplex, err: ProxyError): void {
  if (!socket.writable) return;
  const body = JSON.stringify(err.toProblem());
  const retry = err.retryAfterSeconds();
  socket.end(
    `HTTP/1.1 ${err.status} ${ErrorCodes[err.code].title}\r\n` +
      'Content-Type: application/problem+json\r\n' +
      (retry !== undefined ? `Retry-After: ${retry}\r\n` : '') +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
