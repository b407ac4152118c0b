/**
 * Forwarding through http2-proxy. One call per request; the returned promise
 * settles exactly once, when the response has finished, failed, or the client
 * went away, so the caller can release the request's permit in one place.
 */
import { type ClientRequest, type IncomingMessage, type RequestOptions, type OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import proxy from 'http2-proxy';
import { ProxyError } from '../errors.js';
import type { Clock, TimerHandle } from '../clock.js';
import type { InboundRequest, InboundResponse, RequestContext } from '../accept/context.js';
import type { PooledTarget, UpstreamPool } from './pool.js';
import type { Policy } from '../policy/types.js';
import { addForwardedHeaders } from './headers.js';
import { applyFraming, guardBody, framingOf, type BodyFraming } from './framing.js';
import { connectsItself, describeTlsError, onUpstreamComplete, openRequest } from './clients/index.js';
import { grpcStatusToTrailers } from '../accept/grpc.js';
import { applyRequestRules, applyResponseRules } from './rewrite.js';

/** Hooks other stages attach to the forwarding of one request (tracing, shaping). */
export interface ForwardHooks {
  /** Called with the headers going upstream, e.g. to inject traceparent. */
  onUpstreamHeaders?(ctx: RequestContext, headers: OutgoingHttpHeaders): void;
  /** Returns the stream the response body is piped through (bandwidth shaping); identity when absent. */
  responseBody?(ctx: RequestContext, body: IncomingMessage): NodeJS.ReadableStream;
  /**
   * Called with the upstream request before the request body is written to it
   * (upload shaping wraps its write/end; http2-proxy pauses the client on a false write and resumes on 'drain').
   */
  requestBody?(ctx: RequestContext, upstreamReq: ClientRequest): void;
  /**
   * Called once the upstream response has been read to its end (the upstream
   * is done with the request), before the client has necessarily received it.
   * Not called when the exchange fails first.
   */
  upstreamDone?(ctx: RequestContext): void;
}

export interface ForwardOptions {
  clock: Clock;
  /** Whether the peer socket address is a trusted proxy (its X-Forwarded-* are kept). */
  peerTrusted(ctx: RequestContext): boolean;
  hooks: ForwardHooks;
}

const kState = Symbol('sluice.forward');

/** Per-attempt state, hung on the inbound request so the hooks below need no closures. */
interface Attempt {
  ctx: RequestContext;
  member: PooledTarget;
  pool: UpstreamPool;
  opts: ForwardOptions;
  timer: TimerHandle | undefined;
  upstreamReq: ClientRequest | undefined;
  /** The policy the request started under (body idle timeout). */
  policy: Policy;
  /** Aborted by the exchange (the client left): not the target's fault, never retried. */
  cancelled?: boolean;
  /** How the request body is delimited; the upstream gets the same body, framed the same way. */
  framing: BodyFraming;
}

type WithState = InboundRequest & { [kState]?: Attempt };

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS']);

function onReq(req: InboundRequest, options: RequestOptions): ClientRequest {
  const a = (req as WithState)[kState]!;
  const headers = (options.headers ??= {}) as OutgoingHttpHeaders;
  addForwardedHeaders(headers, a.ctx, a.opts.peerTrusted(a.ctx));
  applyFraming(headers, a.framing);
  a.opts.hooks.onUpstreamHeaders?.(a.ctx, headers);
  applyRequestRules(a.ctx, options);
  const up = openRequest(a.member, options, { hasBody: a.framing.kind !== 'none', bodyIdleMs: a.pool.upstream.idleTimeoutMs });
  (up as ClientRequest & { [kState]?: Attempt })[kState] = a;
  // http2-proxy listens for errors only after a microtask, and not at all when the request was
  // aborted meanwhile; an exchange that ends in that gap destroys `up`: never an unhandled error.
  up.on('error', noop);
  a.upstreamReq = up;
  a.ctx.target = a.member.target.url;
  if (a.ctx.maxBodySize !== Infinity) limitBody(up, a);
  if (hasPendingBody(req, a.framing)) watchBody(req, a);
  // After limitBody: shaped pieces are what gets counted against maxBodySize.
  a.opts.hooks.requestBody?.(a.ctx, up);
  // Last: it must see http2-proxy's write/end calls before the wrappers above.
  guardBody(req, up, a.framing);
  a.ctx.upstreamStart = a.opts.clock.now();
  const up2 = a.pool.upstream;
  // A fresh connection must be made within connectTimeout; the whole exchange must
  // produce response headers within timeout. One timer, re-armed on connect. undici's
  // requests time their connect themselves (a wait for a busy pooled connection is no connect).
  const own = connectsItself(up);
  const first = own ? up2.timeoutMs : Math.min(up2.connectTimeoutMs, up2.timeoutMs);
  a.timer = a.opts.clock.setTimer(() => onDeadline(a, first === up2.timeoutMs), first);
  if (!own) up.once('socket', onSocket);
  return up;
}

/**
 * Counts request body bytes on their way upstream (a chunked body has no length
 * to check up front) and fails the exchange with 413 past the limit.
 */
function limitBody(up: ClientRequest, a: Attempt): void {
  let seen = 0;
  const max = a.ctx.maxBodySize;
  const write = up.write;
  up.write = function (this: ClientRequest, chunk: unknown, ...rest: unknown[]): boolean {
    seen += typeof chunk === 'string' ? Buffer.byteLength(chunk) : (chunk as Buffer).length;
    if (seen > max) {
      up.destroy(new ProxyError('BODY_TOO_LARGE', `request body exceeds ${max} bytes`, { className: a.ctx.klass?.name }));
      return false;
    }
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  } as ClientRequest['write'];
}

function hasPendingBody(req: InboundRequest, framing: BodyFraming): boolean {
  if (framing.kind === 'none') return false;
  return !(req as { complete?: boolean }).complete && !req.readableEnded;
}

/** A client that stops sending its body mid-way holds a slot; give up on it after requestBodyIdle (408). */
function watchBody(req: InboundRequest, a: Attempt): void {
  const ms = a.policy.timeouts.requestBodyIdleMs;
  const onIdle = (): void => {
    a.upstreamReq?.destroy(
      new ProxyError('REQUEST_TIMEOUT', `request body stalled for ${ms} ms`, { className: a.ctx.klass?.name }),
    );
  };
  req.setTimeout(ms, onIdle);
  req.once('end', () => req.setTimeout(0, onIdle));
}

/** The upstream stops sending the response body: abort after its idleTimeout. */
function onUpstreamIdle(this: ClientRequest): void {
  const a = findAttempt(this);
  if (!a) return;
  const u = a.pool.upstream;
  this.destroy(new ProxyError('UPSTREAM_TIMEOUT', `upstream '${u.name}' response stalled for ${u.idleTimeoutMs} ms`, { className: a.ctx.klass?.name }));
}

function onSocket(this: ClientRequest, socket: Socket): void {
  // A new TLS connection counts as made when its handshake is done (the connect timeout covers the handshake).
  if (socket.connecting) socket.once((socket as { encrypted?: boolean }).encrypted ? 'secureConnect' : 'connect', onConnect.bind(this));
  else onConnect.call(this);
}

function onConnect(this: ClientRequest): void {
  const a = findAttempt(this);
  if (!a || a.ctx.upstreamHeadersAt > 0) return;
  const u = a.pool.upstream;
  if (u.connectTimeoutMs >= u.timeoutMs) return;
  a.timer?.cancel();
  const left = Math.max(0, u.timeoutMs - (a.opts.clock.now() - a.ctx.upstreamStart));
  a.timer = a.opts.clock.setTimer(() => onDeadline(a, true), left);
}

function findAttempt(up: ClientRequest): Attempt | undefined {
  return (up as ClientRequest & { [kState]?: Attempt })[kState];
}

function onDeadline(a: Attempt, headersDeadline: boolean): void {
  a.timer = undefined;
  const u = a.pool.upstream;
  const err = headersDeadline
    ? new ProxyError('UPSTREAM_TIMEOUT', `upstream '${u.name}' sent no response headers within ${u.timeoutMs} ms`, {
        className: a.ctx.klass?.name,
      })
    : new ProxyError('UPSTREAM_UNREACHABLE', `connect to ${a.policy.errors.debug ? a.member.target.url : `upstream '${u.name}'`} timed out after ${u.connectTimeoutMs} ms`, {
        className: a.ctx.klass?.name,
      });
  a.upstreamReq?.destroy(err);
}

function onRes(req: InboundRequest, res: InboundResponse, proxyRes: IncomingMessage): void {
  const a = (req as WithState)[kState]!;
  a.timer?.cancel();
  a.timer = undefined;
  const ctx = a.ctx;
  a.upstreamReq?.setTimeout(a.pool.upstream.idleTimeoutMs, onUpstreamIdle);
  ctx.upstreamHeadersAt = a.opts.clock.now();
  ctx.status = proxyRes.statusCode ?? 502;
  const headers = proxyRes.headers as Record<string, string | string[] | undefined>;
  // policy serverTiming: all (default) | trusted (peers in trustedProxies) | off.
  const st = a.policy.serverTiming;
  if (st === 'all' || (st === 'trusted' && a.opts.peerTrusted(ctx))) {
    const timing = `queue;dur=${ctx.queueMs.toFixed(1)}, upstream;dur=${ctx.upstreamMs.toFixed(1)}`;
    const prior = headers['server-timing'];
    headers['server-timing'] = prior ? `${prior}, ${timing}` : timing;
  }
  applyResponseRules(ctx, headers);
  a.pool.onResponse(ctx, a.member, headers);
  const grpcTrailers = grpcStatusToTrailers(headers, res);
  (res as { writeHead(s: number, h: object): unknown }).writeHead(ctx.status, headers);
  const body = a.opts.hooks.responseBody ? a.opts.hooks.responseBody(ctx, proxyRes) : proxyRes;
  if (grpcTrailers) proxyRes.once('end', () => res.addTrailers(grpcTrailers));
  if (proxyRes.trailers && res.addTrailers) proxyRes.once('end', () => res.addTrailers(forwardableTrailers(proxyRes.trailers)));
  if (a.opts.hooks.upstreamDone) {
    (proxyRes as IncomingMessage & { [kState]?: Attempt })[kState] = a;
    // undici's response: as soon as the target has sent it all, even if the client still reads.
    if (!onUpstreamComplete(proxyRes, onUpstreamEnd)) proxyRes.on('end', onUpstreamEnd);
  }
  body.pipe(res as NodeJS.WritableStream);
}

/**
 * Trailer fields never passed on: connection-specific ones, which HTTP/2 forbids (RFC 9113 §8.2.2;
 * Node throws from inside the stream's trailer callback, which would end the process), and the
 * framing and routing fields a trailer must not carry (RFC 9110 §6.5.1). http2-proxy removes the
 * same connection-specific fields from the response header section.
 */
const NOT_TRAILERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'http2-settings', 'trailer', 'content-length', 'host']);

function forwardableTrailers(t: IncomingMessage['trailers']): IncomingMessage['trailers'] {
  let out: IncomingMessage['trailers'] | undefined;
  for (const k in t) {
    if (!NOT_TRAILERS.has(k) && k[0] !== ':') continue;
    out ??= { ...t };
    delete out[k];
  }
  return out ?? t;
}

function onUpstreamEnd(this: NodeJS.ReadableStream & { [kState]?: Attempt }): void {
  const a = this[kState];
  // After the connection is back in its pool (node:http: Node's own 'end' listener queues
  // that in a nextTick; undici: once its onComplete returns), so the next request reuses it.
  if (a) process.nextTick(upstreamDone, a);
}

function upstreamDone(a: Attempt): void {
  a.opts.hooks.upstreamDone!(a.ctx);
}

/** Errors node:http's (or undici's) request throws while it is being built, before any connection. */
const NOT_SENDABLE = new Set(['ERR_INVALID_HTTP_TOKEN', 'ERR_INVALID_CHAR', 'ERR_UNESCAPED_CHARACTERS', 'ERR_HTTP_INVALID_HEADER_VALUE', 'UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED']);

/** `target` is '' unless the policy's errors.debug is on: the target address stays in the logs (access log `target`). */
function mapError(err: unknown, ctx: RequestContext, target: string, upstream: string, connectTimeoutMs: number): ProxyError {
  if (err instanceof ProxyError) return err;
  const at = target ? ` (${target})` : '';
  const e = err as NodeJS.ErrnoException & { connectedSocket?: boolean };
  const className = ctx.klass?.name;
  const tls = describeTlsError(err);
  if (tls) return new ProxyError('UPSTREAM_TLS', `upstream '${upstream}' (${target}): ${tls}`, { className, cause: err });
  if (NOT_SENDABLE.has(e.code ?? '')) {
    // The client's request (or a rewrite of it) cannot be written as HTTP/1.1: nothing reached the target.
    return new ProxyError('BAD_REQUEST', `request cannot be sent upstream: ${e.message}`, { className, cause: err });
  }
  if (e.code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new ProxyError('UPSTREAM_UNREACHABLE', `connect to ${target || `upstream '${upstream}'`} timed out after ${connectTimeoutMs} ms`, { className, cause: err });
  }
  if (!e.connectedSocket || ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'].includes(e.code ?? '')) {
    return new ProxyError('UPSTREAM_UNREACHABLE', `upstream '${upstream}'${at} unreachable: ${e.code ?? e.message}`, {
      className,
      cause: err,
    });
  }
  return new ProxyError('UPSTREAM_RESET', `upstream '${upstream}'${at} failed: ${e.code ?? e.message}`, {
    className,
    cause: err,
  });
}

export function clientGone(ctx: RequestContext): boolean {
  const res = ctx.res;
  if ((res.destroyed && !res.writableFinished) || (ctx.req as { aborted?: boolean }).aborted === true) return true;
  // HTTP/2: a stream reset (by the client, or by nghttp2 for a malformed request such as a
  // content-length that disagrees with its DATA) before sluice answered. Node's compatibility
  // layer then neither marks the request aborted nor emits 'close' again, so a forward started
  // now would wait for events that never come.
  const stream = (ctx.req as { stream?: { closed?: boolean; destroyed?: boolean; rstCode?: number } }).stream;
  if (stream === undefined || (stream.closed !== true && stream.destroyed !== true)) return false;
  return (stream.rstCode !== undefined && stream.rstCode !== 0) || !res.writableEnded;
}

/**
 * Forwards one request. Resolves with the outcome; never rejects. Errors before
 * response headers are returned as a ProxyError for the caller to answer.
 */
export async function forward(
  ctx: RequestContext,
  pool: UpstreamPool,
  opts: ForwardOptions,
  policy: Policy,
  /** What the request (and its body) is read from: the client's request, or a stand-in for a buffered body. */
  inbound: InboundRequest = ctx.req,
): Promise<ProxyError | undefined> {
  const framing = framingOf(ctx.req);
  let refusedBy: PooledTarget | undefined;
  let lastError: ProxyError | undefined;
  const retried = { stale: false };
  for (let attempt = 0; ; attempt++) {
    if (clientGone(ctx)) return undefined;
    const member = pool.choose(ctx, refusedBy);
    if (!member) return lastError ?? pool.noTargetError(ctx);
    member.active++;
    const a: Attempt = { ctx, member, pool, opts, timer: undefined, upstreamReq: undefined, policy, framing };
    (inbound as WithState)[kState] = a;
    try {
      await proxy.web(inbound as never, ctx.res as never, {
        hostname: member.target.hostname,
        port: member.target.port,
        onReq: onReq as never,
        onRes: onRes as never,
      });
      if (ctx.upstreamHeadersAt > 0) {
        if (ctx.status >= 502 && ctx.status <= 504) pool.failed(member);
        else pool.succeeded(member);
      }
      return undefined;
    } catch (err) {
      if (clientGone(ctx) || a.cancelled) return undefined;
      const e = err as { reusedSocket?: boolean; code?: string; connectedSocket?: boolean };
      const mapped = mapError(err, ctx, policy.errors.debug ? member.target.url : '', pool.upstream.name, pool.upstream.connectTimeoutMs);
      // A pooled socket the backend closed while idle: safe to try once more if nothing was sent or received
      // (a request with a body may have had it read already, so it is never retried).
      const staleSocket = e.reusedSocket === true && e.code === 'ECONNRESET' && IDEMPOTENT.has(ctx.method) && framing.kind === 'none';
      // A target that refused the connection saw nothing (the body is read only once connected): try another.
      const refused = e.connectedSocket === false && mapped.code === 'UPSTREAM_UNREACHABLE' && pool.size > 1;
      // Not the target's doing: a body over the limit, a request that cannot be sent at all.
      if (!staleSocket && mapped.code !== 'BODY_TOO_LARGE' && mapped.code !== 'BAD_REQUEST') pool.failed(member);
      lastError = mapped;
      // At most one retry of each kind: a stale pooled socket, then a refusing target (skipped on the retry).
      if (!ctx.res.headersSent && ((staleSocket && !retried.stale) || (refused && refusedBy === undefined))) {
        if (refused) refusedBy = member;
        else retried.stale = true;
        continue;
      }
      return mapped;
    } finally {
      member.active--;
      a.timer?.cancel();
      (inbound as WithState)[kState] = undefined;
    }
  }
}

/** Aborts the upstream request of a forward in progress (the exchange ended first); its promise then settles. */
export function abortForward(inbound: InboundRequest): void {
  const a = (inbound as WithState)[kState];
  if (!a) return;
  a.cancelled = true;
  a.upstreamReq?.destroy();
}

function noop(): void {}
