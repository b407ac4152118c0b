/**
 * Forwarding through http2-proxy. One call per request; the returned promise
 * settles exactly once, when the response has finished, failed, or the client
 * went away, so the caller can release the request's permit in one place.
 */
import { request, type ClientRequest, type IncomingMessage, type RequestOptions, type OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import proxy from 'http2-proxy';
import { ProxyError } from '../errors.js';
import type { Clock, TimerHandle } from '../clock.js';
import type { InboundRequest, InboundResponse, RequestContext } from '../accept/context.js';
import type { PooledTarget, UpstreamPool } from './pool.js';
import type { Policy } from '../policy/types.js';
import { addForwardedHeaders } from './headers.js';

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
}

type WithState = InboundRequest & { [kState]?: Attempt };

const IDEMPOTENT_NO_BODY = new Set(['GET', 'HEAD', 'OPTIONS']);

function onReq(req: InboundRequest, options: RequestOptions): ClientRequest {
  const a = (req as WithState)[kState]!;
  const headers = (options.headers ??= {}) as OutgoingHttpHeaders;
  options.agent = a.member.agent;
  addForwardedHeaders(headers, a.ctx, a.opts.peerTrusted(a.ctx));
  a.opts.hooks.onUpstreamHeaders?.(a.ctx, headers);
  const up = request(options);
  // http2-proxy listens for errors only after a microtask, and not at all when the request was
  // aborted meanwhile; an exchange that ends in that gap destroys `up`: never an unhandled error.
  up.on('error', noop);
  a.upstreamReq = up;
  if (a.ctx.maxBodySize !== Infinity) limitBody(up, a);
  if (hasPendingBody(req)) watchBody(req, a);
  // After limitBody: shaped pieces are what gets counted against maxBodySize.
  a.opts.hooks.requestBody?.(a.ctx, up);
  a.ctx.upstreamStart = a.opts.clock.now();
  const up2 = a.pool.upstream;
  // A fresh connection must be made within connectTimeout; the whole exchange must
  // produce response headers within timeout. One timer, re-armed on connect.
  const first = Math.min(up2.connectTimeoutMs, up2.timeoutMs);
  a.timer = a.opts.clock.setTimer(() => onDeadline(a, first === up2.timeoutMs), first);
  up.once('socket', onSocket);
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

function hasPendingBody(req: InboundRequest): boolean {
  if (IDEMPOTENT_NO_BODY.has(req.method ?? 'GET')) return false;
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
  if (socket.connecting) socket.once('connect', onConnect.bind(this));
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
    : new ProxyError('UPSTREAM_UNREACHABLE', `connect to ${a.member.target.url} timed out after ${u.connectTimeoutMs} ms`, {
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
  const timing = `queue;dur=${ctx.queueMs.toFixed(1)}, upstream;dur=${ctx.upstreamMs.toFixed(1)}`;
  const prior = headers['server-timing'];
  headers['server-timing'] = prior ? `${prior}, ${timing}` : timing;
  (res as { writeHead(s: number, h: object): unknown }).writeHead(ctx.status, headers);
  const body = a.opts.hooks.responseBody ? a.opts.hooks.responseBody(ctx, proxyRes) : proxyRes;
  if (proxyRes.trailers && res.addTrailers) proxyRes.once('end', () => res.addTrailers(proxyRes.trailers));
  body.pipe(res as NodeJS.WritableStream);
}

function mapError(err: unknown, ctx: RequestContext, target: string, upstream: string): ProxyError {
  if (err instanceof ProxyError) return err;
  const e = err as NodeJS.ErrnoException & { connectedSocket?: boolean };
  const className = ctx.klass?.name;
  if (!e.connectedSocket || ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'].includes(e.code ?? '')) {
    return new ProxyError('UPSTREAM_UNREACHABLE', `upstream '${upstream}' (${target}) unreachable: ${e.code ?? e.message}`, {
      className,
      cause: err,
    });
  }
  return new ProxyError('UPSTREAM_RESET', `upstream '${upstream}' (${target}) failed: ${e.code ?? e.message}`, {
    className,
    cause: err,
  });
}

export function clientGone(ctx: RequestContext): boolean {
  const res = ctx.res;
  return (res.destroyed && !res.writableFinished) || (ctx.req as { aborted?: boolean }).aborted === true;
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
  for (let attempt = 0; ; attempt++) {
    const member = pool.pick();
    const a: Attempt = { ctx, member, pool, opts, timer: undefined, upstreamReq: undefined, policy };
    (inbound as WithState)[kState] = a;
    try {
      await proxy.web(inbound as never, ctx.res as never, {
        hostname: member.target.hostname,
        port: member.target.port,
        onReq: onReqTagged as never,
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
      const mapped = mapError(err, ctx, member.target.url, pool.upstream.name);
      // A pooled socket the backend closed while idle: safe to try once more if nothing was sent or received.
      const staleSocket = e.reusedSocket === true && e.code === 'ECONNRESET' && IDEMPOTENT_NO_BODY.has(ctx.method);
      // A target that refused the connection saw nothing (the body is read only once connected): try another.
      const refused = e.connectedSocket === false && mapped.code === 'UPSTREAM_UNREACHABLE' && pool.size > 1;
      if (!staleSocket && mapped.code !== 'BODY_TOO_LARGE') pool.failed(member);
      if (attempt === 0 && !ctx.res.headersSent && (staleSocket || refused)) continue;
      return mapped;
    } finally {
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

function onReqTagged(req: InboundRequest, options: RequestOptions): ClientRequest {
  const up = onReq(req, options);
  (up as ClientRequest & { [kState]?: Attempt })[kState] = (req as WithState)[kState];
  return up;
}

function noop(): void {}
