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
import { UpstreamPool } from './forward/pool.js';
import { forward, type ForwardHooks, type ForwardOptions } from './forward/proxy.js';
import { addForwardedHeaders } from './forward/headers.js';
import type { Logger } from './telemetry/log.js';

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
  ) {
    this.router = new Router(policy.routes);
    this.classifier = new Classifier(policy);
    this.clientIp = new ClientIp(policy.trustedProxies);
    this.identity = policy.identity ? new IdentityVerifier(policy.identity.jwt) : undefined;
    const pools = new Map<string, UpstreamPool>();
    for (const u of policy.upstreams.values()) {
      const old = previous?.pools.get(u.name);
      pools.set(u.name, old && old.sameAs(u) ? old : new UpstreamPool(u));
    }
    this.pools = pools;
  }

  /** Route, client address, identity and class of a request (also used by `sluice explain`). */
  async decide(ctx: RequestContext): Promise<Decision | undefined> {
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
}

/** One request waiting for a slot and then forwarded; the scheduler's Job. */
class Exchange implements Job {
  queueEntry: Entry | undefined;
  private settled = false;

  constructor(
    readonly ctx: RequestContext,
    readonly rt: Runtime,
    readonly p: Pipeline,
  ) {}

  /** Client left: drop out of the queue at once; an in-flight forward notices by itself. */
  readonly onClose = (): void => {
    if (this.queueEntry) {
      this.p.scheduler.cancel(this);
      this.p.finish(this.ctx, 'client_abort');
    }
  };

  grant(permit: Permit): void {
    const ctx = this.ctx;
    ctx.dequeuedAt = this.p.clock.now();
    if (ctx.queuedAt === 0) ctx.queuedAt = ctx.dequeuedAt;
    void this.run(permit);
  }

  private async run(permit: Permit): Promise<void> {
    const ctx = this.ctx;
    try {
      const pool = this.rt.pools.get(ctx.route!.upstream.name)!;
      const err = await forward(ctx, pool, this.p.forwardOptions);
      if (err) {
        sendProblem(ctx.res, err);
        ctx.status = err.status;
        this.p.finish(ctx, err.code === 'UPSTREAM_TIMEOUT' ? 'upstream_timeout' : 'upstream_error');
      } else {
        this.p.finish(ctx, ctx.res.writableFinished ? 'forwarded' : 'client_abort');
      }
    } catch (err) {
      this.p.log.error({ err }, 'forwarding failed unexpectedly');
      sendProblem(ctx.res, new ProxyError('UPSTREAM_RESET', 'internal forwarding error', { className: ctx.klass?.name }));
      this.p.finish(ctx, 'upstream_error');
    } finally {
      permit.release();
      ctx.res.off('close', this.onClose);
    }
  }

  reject(err: ProxyError, reason: RejectReason): void {
    if (this.settled) return;
    this.settled = true;
    this.ctx.res.off('close', this.onClose);
    this.ctx.status = err.status;
    sendProblem(this.ctx.res, err);
    this.p.finish(this.ctx, reason === 'rate_limited' ? 'rate_limited' : reason === 'shutting_down' ? 'rejected' : reason);
  }
}

export class Pipeline {
  private rt: Runtime;
  readonly scheduler: Scheduler;
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
    this.rt = new Runtime(policy, undefined);
    this.scheduler = new Scheduler(policy, opts.clock);
    this.forwardOptions = {
      clock: opts.clock,
      peerTrusted: (ctx) => this.rt.clientIp.peerTrusted(ctx.peer),
      hooks: opts.hooks ?? {},
    };
  }

  get runtime(): Runtime {
    return this.rt;
  }

  /** Swaps in a new policy; requests already admitted keep the runtime they hold. */
  apply(policy: Policy): void {
    const old = this.rt;
    this.rt = new Runtime(policy, old);
    this.scheduler.update(policy);
    old.retire(this.rt);
  }

  readonly handle = (req: InboundRequest, res: InboundResponse): void => {
    const ctx = new RequestContext(req, res, this.clock.now());
    req.on('error', noop);
    res.on('error', noop);
    void this.admit(ctx, this.rt);
  };

  private async admit(ctx: RequestContext, rt: Runtime): Promise<void> {
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
    const ex = new Exchange(ctx, rt, this);
    ctx.res.once('close', ex.onClose);
    ctx.queuedAt = this.clock.now();
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
        reject: (err) => {
          socket.off('close', onClose);
          writeRawProblem(socket, err);
          this.finish(ctx, 'rejected');
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
