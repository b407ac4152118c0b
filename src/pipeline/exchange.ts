/**
 * One exchange: a request (HTTP/1.1, HTTP/2 or a WebSocket handshake) from
 * arrival to its one end. An explicit state machine:
 *
 * ```
 * admitted ─▶ delayed ─▶ buffering ─▶ queued ─▶ forwarding ─▶ draining ─▶ done
 *    │  (rate limit,   (request body   (scheduler)  (slot held)  (upstream done,
 *    │   onLimit:queue) before a slot)                          slot freed, client
 *    │                                                          reads the buffer)
 *    └──── any state ──────────────────────────────────────────────────────▶ done
 * ```
 * States are skipped when they do not apply (no rate limit, no body, a free slot).
 * Whatever happens, in whatever order (client reset before the handler ran,
 * client gone while queued or before the upstream answered, upstream error after
 * the response headers, shutdown, slow body), the exchange ends through
 * `settle()`, which runs once and, depending on the state it leaves:
 * answers the client if an answer can still be given (or cuts a started response
 * so it reads as failed: RST_STREAM INTERNAL_ERROR on HTTP/2, a closed connection
 * without the last chunk on HTTP/1.1), gives back a reserved rate-limit token,
 * leaves the queue, releases the slot, aborts the upstream request, frees the
 * body buffer, stops listening to the client, and ends telemetry.
 *
 * Model: Netflix concurrency-limits' permit settled exactly once; http2-proxy's
 * one terminal handler per request.
 */
import type { Duplex } from 'node:stream';
import { constants as h2 } from 'node:http2';
import type { Http2ServerResponse } from 'node:http2';
import { ErrorCodes, ProxyError } from '../errors.js';
import type { InboundRequest, Outcome, RequestContext } from '../accept/context.js';
import { sendProblem } from '../accept/problem.js';
import type { Job, Permit, RejectReason, Entry } from '../schedule/scheduler.js';
import type { AdmitDecision, ClassLimiter } from '../admit/index.js';
import type { TimerHandle } from '../clock.js';
import { forward, abortForward } from '../forward/proxy.js';
import { forwardWebSocket, type WebSocketAttempt } from '../forward/websocket.js';
import { RequestBody, hasBody } from '../forward/request-body.js';
import { RateWatch } from '../forward/buffer.js';
import { setRequestIdHeader } from '../forward/request-id.js';
import type { Runtime } from './runtime.js';
import type { Decision } from '../classify/classifier.js';
import { admissionGate } from '../classify/access.js';
import { sampleOf } from '../schedule/limit/feedback.js';
import { closerOf, watch, unwatch, type Watcher } from './client-watch.js';
import type { Pipeline } from './index.js';

export type ExchangeState = 'admitted' | 'delayed' | 'buffering' | 'queued' | 'forwarding' | 'draining' | 'done';

const kExchange = Symbol('sluice.exchange');

/** The exchange a context belongs to (forward hooks get only the context). */
export function exchangeOf(ctx: RequestContext): Exchange | undefined {
  return (ctx as RequestContext & { [kExchange]?: Exchange })[kExchange];
}

export class Exchange implements Job, Watcher {
  state: ExchangeState = 'admitted';
  queueEntry: Entry | undefined;
  private permit: Permit | undefined;
  private delay: TimerHandle | undefined;
  private token: { key: string; shared: boolean; limiter: ClassLimiter } | undefined;
  private body: RequestBody | undefined;
  private readonly closer: Duplex | undefined;
  private watching = false;
  private ws: WebSocketAttempt | undefined;
  private clientWatch: RateWatch | undefined;
  /** The response body chain (buffer … client) while a response is being relayed; destroyed by settle. */
  private responseStreams: NodeJS.ReadableStream[] | undefined = undefined;
  /** A WebSocket tunnel is open: its close is its normal end. */
  private tunnelOpen = false;

  constructor(
    readonly ctx: RequestContext,
    /** The policy generation this request reads everything from. */
    readonly rt: Runtime,
    private readonly p: Pipeline,
    /** Set for a WebSocket handshake: the upgraded socket and its first bytes. */
    private readonly upgrade?: { socket: Duplex; head: Buffer },
  ) {
    (ctx as RequestContext & { [kExchange]?: Exchange })[kExchange] = this;
    this.closer = upgrade ? upgrade.socket : closerOf(ctx.req);
  }

  /** The client's connection or stream is closed, whether or not its close event has been delivered. */
  private get clientClosed(): boolean {
    const c = this.closer;
    return !c || c.destroyed || (c as { closed?: boolean }).closed === true;
  }

  /** Settled (read after an await: the state may have moved meanwhile). */
  get ended(): boolean {
    return this.state === 'done';
  }

  get isWebSocket(): boolean {
    return this.upgrade !== undefined;
  }

  /** Starts the exchange; the client may already be gone (an HTTP/2 stream reset with its HEADERS). */
  start(): void {
    this.p.live.add(this);
    this.watching = watch(this.closer, this);
    if (!this.watching) {
      this.settle('client_abort');
      return;
    }
    try {
      this.admit();
    } catch (err) {
      this.internalError(err);
    }
  }

  /** A bug, not a client or upstream failure: logged, and the exchange still ends once. */
  // (Methods, not arrow-function fields: a field would allocate a closure per request
  // even when, as usually, it is never called; the rare callers bind or wrap them.)
  private internalError(err: unknown): void {
    this.p.log.error({ err }, 'request admission failed unexpectedly');
    this.settle('upstream_error', new ProxyError('UPSTREAM_RESET', 'internal admission error', { className: this.ctx.klass?.name }));
  }

  // ---- admitted ----
  // Plain calls from arrival to the scheduler: a step that must wait (a JWT to verify, a
  // Redis rate limit, a body to buffer) continues from its promise; the others cost no
  // promise and no turn of the event loop.

  private admit(): void {
    const ctx = this.ctx;
    const rt = this.rt;
    const maxUrl = rt.policy.limits.maxUrlLength;
    if ((ctx.req.url?.length ?? 0) > maxUrl) {
      this.settle('rejected', new ProxyError('URI_TOO_LONG', `request target of ${ctx.req.url!.length} characters exceeds ${maxUrl}`));
      return;
    }
    if (ctx.targetError !== undefined) {
      // A path that normalisation refuses (e.g. an encoded slash, when configured so): never routed.
      this.settle('rejected', new ProxyError('BAD_REQUEST', ctx.targetError));
      return;
    }
    const d = rt.decide(ctx);
    if (d instanceof Promise) {
      d.then((v) => {
        if (!this.ended) this.decided(v);
      }).catch((err: unknown) => this.internalError(err));
      return;
    }
    this.decided(d);
  }

  private decided(d: Decision | undefined): void {
    const ctx = this.ctx;
    if (this.clientClosed) {
      this.settle('client_abort');
      return;
    }
    if (!d) {
      this.settle('no_route', new ProxyError('NO_ROUTE', `no route for ${ctx.method} ${ctx.host}${ctx.path}`));
      return;
    }
    // Access control and the all-targets-down 503, before any rate-limit token or queue slot is taken.
    const refused = admissionGate(ctx, this.rt.identity, this.rt.pools.get(ctx.route!.upstream.name));
    if (refused instanceof Promise) {
      refused.then((r) => {
        if (!this.ended) this.gated(d, r);
      }).catch((err: unknown) => this.internalError(err));
      return;
    }
    this.gated(d, refused);
  }

  private gated(d: Decision, refused: ProxyError | undefined): void {
    const ctx = this.ctx;
    if (refused) {
      this.settle('rejected', refused);
      return;
    }
    const max = Math.min(ctx.route!.maxBodySize, d.klass.maxBodySize);
    ctx.maxBodySize = max;
    if (max !== Infinity) {
      // A declared length over the limit is refused before it takes a slot or reaches the upstream.
      const declared = Number(ctx.req.headers['content-length'] ?? 0);
      if (declared > max) {
        this.settle('rejected', new ProxyError('BODY_TOO_LARGE', `request body of ${declared} bytes exceeds ${max}`, { className: d.klass.name }));
        return;
      }
    }
    ctx.queuedAt = this.p.clock.now();
    if (d.klass.rateLimit) {
      const v = this.p.admission.admit(ctx, d.klass);
      if (v instanceof Promise) {
        v.then((x) => this.limited(x, d.klass.name)).catch((err: unknown) => this.internalError(err));
        return;
      }
      this.limited(v, d.klass.name);
      return;
    }
    this.readBody();
  }

  /** The rate limit's answer. */
  private limited(v: AdmitDecision, className: string): void {
    if (this.ended) {
      // Gone while Redis answered: a token reserved for later goes back.
      if (v.kind === 'delay') v.limiter.refund(v.key, v.shared);
      return;
    }
    if (v.kind === 'reject') {
      const cs = this.p.scheduler.classState(className);
      if (cs) cs.rejected.rate_limited++;
      this.settle('rate_limited', v.error);
      return;
    }
    if (v.kind === 'delay') {
      this.hold(v);
      return;
    }
    this.readBody();
  }

  // ---- delayed ----

  /** Holds the request back `d.ms` with its token reserved, then goes on. */
  private hold(d: Extract<AdmitDecision, { kind: 'delay' }>): void {
    this.state = 'delayed';
    this.token = { key: d.key, shared: d.shared, limiter: d.limiter };
    this.delay = this.p.clock.setTimer(() => this.afterDelay(), d.ms);
  }

  private afterDelay(): void {
    this.delay = undefined;
    if (this.state !== 'delayed') return;
    this.token = undefined; // spent
    try {
      this.readBody();
    } catch (err) {
      this.internalError(err);
    }
  }

  // ---- buffering ----

  private readBody(): void {
    const ctx = this.ctx;
    if (!this.isWebSocket && hasBody(ctx.req)) {
      const policy = this.rt.policy;
      const body = new RequestBody(ctx.req, {
        clock: this.p.clock,
        bufferSize: policy.limits.buffering.request,
        budget: this.p.budget,
        minRate: policy.timeouts.minBodyRate,
        minRateWindowMs: policy.timeouts.minBodyRateWindowMs,
        deadlineMs: Math.max(0, policy.timeouts.requestBodyMs - (this.p.clock.now() - ctx.start)),
        idleMs: policy.timeouts.requestBodyIdleMs,
        maxBytes: ctx.maxBodySize,
        className: ctx.klass?.name,
        onError: (err) => this.onBodyError(err),
      });
      this.body = body;
      if (body.buffered) {
        this.state = 'buffering';
        body.fill().then(() => {
          if (this.state === 'buffering') this.enqueue();
        }).catch((err: unknown) => this.internalError(err));
        return;
      }
    }
    this.enqueue();
  }

  private enqueue(): void {
    const ctx = this.ctx;
    this.state = 'queued';
    this.p.scheduler.submit(this, ctx.klass!, ctx.route!.upstream);
  }

  private onBodyError(err: ProxyError | Error): void {
    if (err instanceof ProxyError) this.settle('rejected', err);
    else this.settle('client_abort');
  }

  // ---- queued (the scheduler's Job) ----

  grant(permit: Permit): void {
    if (this.state === 'done') {
      permit.release();
      return;
    }
    if (this.clientClosed) {
      // Gone, and its close event not delivered yet (an HTTP/2 reset read with its HEADERS): never forwarded.
      this.permit = permit;
      this.settle('client_abort');
      return;
    }
    this.permit = permit;
    this.state = 'forwarding';
    const ctx = this.ctx;
    ctx.dequeuedAt = this.p.clock.now();
    if (ctx.queuedAt === 0) ctx.queuedAt = ctx.dequeuedAt;
    if (this.upgrade) void this.tunnel(this.upgrade.socket, this.upgrade.head);
    else void this.forwardHttp();
  }

  reject(err: ProxyError, reason: RejectReason): void {
    this.queueEntry = undefined;
    this.settle(reason === 'shutting_down' ? 'rejected' : reason, err);
  }

  // ---- forwarding ----

  private async forwardHttp(): Promise<void> {
    const ctx = this.ctx;
    try {
      const pool = this.rt.pools.get(ctx.route!.upstream.name)!;
      const err = await forward(ctx, pool, this.p.forwardOptions, this.rt.policy, this.inbound);
      if (err) this.settle(outcomeOf(err), err);
      else this.settle(ctx.res.writableFinished ? 'forwarded' : 'client_abort');
    } catch (err) {
      this.p.log.error({ err }, 'forwarding failed unexpectedly');
      this.settle('upstream_error', new ProxyError('UPSTREAM_RESET', 'internal forwarding error', { className: ctx.klass?.name }));
    }
  }

  private async tunnel(socket: Duplex, head: Buffer): Promise<void> {
    const ctx = this.ctx;
    this.ws = { upstreamReq: undefined };
    try {
      const pool = this.rt.pools.get(ctx.route!.upstream.name)!;
      await forwardWebSocket(ctx, socket, head, pool, {
        clock: this.p.clock,
        peerTrusted: this.rt.clientIp.peerTrusted(ctx.peer),
        onOpen: () => (this.tunnelOpen = true),
        ...(this.p.forwardOptions.hooks.onUpstreamHeaders ? { onUpstreamHeaders: this.p.forwardOptions.hooks.onUpstreamHeaders } : {}),
      }, this.ws);
      this.settle('forwarded');
    } catch (err) {
      const e = err instanceof ProxyError ? err : new ProxyError('UPSTREAM_RESET', 'internal forwarding error', { className: ctx.klass?.name, cause: err });
      this.settle(outcomeOf(e), e);
    }
  }

  /** What the forward step reads the request from: the body stand-in when there is a body. */
  get inbound(): InboundRequest {
    return (this.body as unknown as InboundRequest | undefined) ?? this.ctx.req;
  }

  // ---- draining ----

  /**
   * The upstream response has been read to its end (into the response buffer,
   * or through to the client): the slot goes back while the client drains.
   * The client's reading speed is watched from here on.
   */
  upstreamDone(): void {
    if (this.state !== 'forwarding') return;
    this.state = 'draining';
    // The latency sample feeds an adaptive limit (schedule/limit/); fixed limits ignore it.
    this.permit?.release(this.permit.up.adaptive ? sampleOf(this.ctx) : undefined);
    this.permit = undefined;
  }

  /** The streams a response body passes through; an exchange that ends unfinished destroys them (and frees their buffers). */
  relaying(...streams: NodeJS.ReadableStream[]): void {
    this.responseStreams = streams;
  }

  /**
   * Watches how fast the client reads the response (forward hook, after the response buffer),
   * from the first time the client's side is full (pipe pauses `out`): a response the client
   * takes at once costs no timer.
   */
  watchClientReads(out: NodeJS.ReadableStream): void {
    if (this.rt.policy.timeouts.minBodyRate <= 0) return;
    (out as Paced)[kPaced] = this;
    out.on('pause', onFirstPause);
  }

  /** @internal The client's side was full for the first time (onFirstPause). */
  firstPause(out: NodeJS.ReadableStream): void {
    if (this.state === 'forwarding' || this.state === 'draining') this.startClientWatch(out);
  }

  private startClientWatch(out: NodeJS.ReadableStream): void {
    const t = this.rt.policy.timeouts;
    const res = this.ctx.res;
    const sink = (res as Http2ServerResponse).stream ?? res;
    this.clientWatch = new RateWatch({
      clock: this.p.clock,
      minRate: t.minBodyRate,
      windowMs: t.minBodyRateWindowMs,
      waitingOnPeer: () => (sink as { writableNeedDrain?: boolean }).writableNeedDrain === true,
      onSlow: (detail) => this.settle('client_abort', new ProxyError('REQUEST_TIMEOUT', `client reads the response too slowly: ${detail}`, { className: this.ctx.klass?.name })),
    });
    const w = this.clientWatch;
    out.on('data', (c: Buffer) => w.add(c.length));
  }

  // ---- any state ----

  /** The client's connection or stream closed. */
  clientGone(): void {
    this.watching = false;
    if (this.state === 'done') return;
    if (!this.isWebSocket && this.ctx.res.writableFinished) return; // a normal end; the forward step settles
    this.settle(this.tunnelOpen ? 'forwarded' : 'client_abort');
  }

  /** Shutdown: a request still waiting (not yet forwarding) is answered 503 now. */
  refuseIfWaiting(err: ProxyError): boolean {
    if (this.state === 'forwarding' || this.state === 'draining' || this.state === 'done') return false;
    const cs = this.ctx.klass ? this.p.scheduler.classState(this.ctx.klass.name) : undefined;
    if (cs) cs.rejected.shutting_down++;
    this.settle('rejected', err);
    return true;
  }

  /**
   * The one end of the exchange. Safe to call any number of times from any
   * state; only the first call acts.
   */
  settle(outcome: Outcome, err?: ProxyError): void {
    const from = this.state;
    if (from === 'done') return;
    this.state = 'done';
    const ctx = this.ctx;
    // What the state held.
    this.delay?.cancel();
    this.delay = undefined;
    if (this.token) {
      this.token.limiter.refund(this.token.key, this.token.shared);
      this.token = undefined;
    }
    if (this.queueEntry) this.p.scheduler.cancel(this);
    this.permit?.release(this.permit.up.adaptive ? sampleOf(ctx, outcome) : undefined);
    this.permit = undefined;
    this.clientWatch?.stop();
    if (this.watching) {
      unwatch(this.closer, this);
      this.watching = false;
    }
    // The client's side: an answer, or a cut that reads as a failure.
    if (err) {
      ctx.status = err.status;
      this.answer(err);
    } else if (outcome === 'client_abort' && !this.isWebSocket && !ctx.res.writableFinished && !ctx.res.destroyed) {
      ctx.res.destroy();
    }
    // The upstream's side: a forward still running is aborted (its promise then ends quietly).
    // (Draining: the upstream is done and its socket may already serve another request; nothing to abort.)
    if (from === 'forwarding' && outcome !== 'forwarded') {
      if (this.ws?.upstreamReq) this.ws.upstreamReq.destroy();
      else if (!this.isWebSocket) abortForward(this.inbound);
    }
    if (this.body && !this.body.destroyed) this.body.destroy();
    if (outcome !== 'forwarded' && this.responseStreams) for (const r of this.responseStreams) (r as NodeJS.ReadableStream & { destroy?(): void }).destroy?.();
    this.responseStreams = undefined;
    this.p.live.delete(this);
    this.p.finish(ctx, outcome);
  }

  private answer(err: ProxyError): void {
    if (this.upgrade) {
      writeRawProblem(this.upgrade.socket, err);
      return;
    }
    const res = this.ctx.res;
    if (res.headersSent && !res.writableEnded && !res.destroyed) {
      // Too late for a status: make the truncation visible.
      const stream = (res as Http2ServerResponse).stream;
      if (stream) stream.close(h2.NGHTTP2_INTERNAL_ERROR);
      else res.destroy();
      return;
    }
    if (this.body && !this.body.complete && this.ctx.req.httpVersionMajor === 1) res.setHeader('connection', 'close');
    setRequestIdHeader(this.ctx);
    sendProblem(res, err);
  }
}

const kPaced = Symbol('sluice.paced');
type Paced = NodeJS.ReadableStream & { [kPaced]?: Exchange };

/** 'pause' on a response body, once: module-level, so no closure or once-wrapper per request. */
function onFirstPause(this: Paced): void {
  this.removeListener('pause', onFirstPause);
  const ex = this[kPaced];
  this[kPaced] = undefined;
  ex?.firstPause(this);
}

/** How a forwarding error ends an exchange. */
export function outcomeOf(err: ProxyError): Outcome {
  switch (err.code) {
    case 'UPSTREAM_TIMEOUT':
      return 'upstream_timeout';
    case 'BODY_TOO_LARGE':
    case 'REQUEST_TIMEOUT':
    case 'BAD_REQUEST':
      return 'rejected';
    default:
      return 'upstream_error';
  }
}

/** A WebSocket request has a socket, not a response: problem+json written raw, then the socket closed. */
export function writeRawProblem(socket: Duplex, err: ProxyError): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify(err.toProblem());
  const retry = err.retryAfterSeconds();
  let extra = '';
  if (err.headers) for (const [k, v] of Object.entries(err.headers)) extra += `${k}: ${v}\r\n`;
  socket.end(
    `HTTP/1.1 ${err.status} ${ErrorCodes[err.code].title}\r\n` +
      'Content-Type: application/problem+json\r\n' +
      (retry !== undefined ? `Retry-After: ${retry}\r\n` : '') +
      extra +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
