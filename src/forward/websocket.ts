/**
 * The WebSocket forward step (RFC 6455 §4.1 handshake through http2-proxy's
 * `ws`). The exchange around it (pipeline/exchange.ts) is the same as for any
 * request: URL length, route, class, rate limit, queue and slot. This step adds
 * what the HTTP forward step does for requests: the X-Forwarded-* headers, the
 * route's path rewrite and header rules (response rules on the 101), the sticky
 * session cookie, the
 * upstream's connect timeout and its response-headers timeout (an upstream that
 * neither switches protocols nor answers within `timeout`: 504), and outlier
 * feedback to the pool (refused, reset or timed-out targets count as failures).
 *
 * Resolves when the tunnel has closed; rejects with a ProxyError when no tunnel
 * could be made (the caller answers the client if it still can).
 */
import { request, type ClientRequest, type IncomingMessage, type RequestOptions, type OutgoingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import { request as httpsRequest } from 'node:https';
import proxy from 'http2-proxy';
import { tlsConnectOptions } from './clients/tls.js';
import { ProxyError } from '../errors.js';
import type { Clock, TimerHandle } from '../clock.js';
import type { RequestContext } from '../accept/context.js';
import type { UpstreamPool } from './pool.js';
import { addForwardedHeaders } from './headers.js';
import { applyRequestRules, applyResponseRules } from './rewrite.js';

export interface WebSocketForward {
  clock: Clock;
  peerTrusted: boolean;
  onUpstreamHeaders?(ctx: RequestContext, headers: OutgoingHttpHeaders): void;
  /** The tunnel is open (101 relayed): the exchange is now a stream of frames. */
  onOpen?(): void;
}

/** The upstream request of a tunnel being made, so an exchange that ends can abort it. */
export interface WebSocketAttempt {
  upstreamReq: ClientRequest | undefined;
}

export async function forwardWebSocket(
  ctx: RequestContext,
  socket: Duplex,
  head: Buffer,
  pool: UpstreamPool,
  o: WebSocketForward,
  attempt: WebSocketAttempt,
): Promise<void> {
  const member = pool.choose(ctx) ?? pool.pick();
  const u = pool.upstream;
  let timer: TimerHandle | undefined;
  let opened = false;
  const fail = (up: ClientRequest, err: ProxyError): void => {
    timer = undefined;
    up.destroy(err);
  };
  try {
    await proxy.ws(ctx.req as never, socket as never, head, {
      hostname: member.target.hostname,
      port: member.target.port,
      onReq: (_req: unknown, options: RequestOptions) => {
        const headers = (options.headers ??= {}) as OutgoingHttpHeaders;
        addForwardedHeaders(headers, ctx, o.peerTrusted);
        o.onUpstreamHeaders?.(ctx, headers);
        applyRequestRules(ctx, options);
        // wss:// to an https:// target, with the upstream's TLS settings (an HTTP/1.1 upgrade, whatever its protocol).
        const tls = member.target.tls;
        const up = tls ? httpsRequest({ ...options, ...tlsConnectOptions(tls) }) : request(options);
        up.on('error', noop); // destroyed by the exchange before http2-proxy listens: never unhandled
        attempt.upstreamReq = up;
        ctx.upstreamStart = o.clock.now();
        const first = Math.min(u.connectTimeoutMs, u.timeoutMs);
        const connectOnly = u.connectTimeoutMs < u.timeoutMs;
        timer = o.clock.setTimer(
          () =>
            fail(
              up,
              connectOnly
                ? new ProxyError('UPSTREAM_UNREACHABLE', `connect to ${member.target.url} timed out after ${u.connectTimeoutMs} ms`, { className: ctx.klass?.name })
                : new ProxyError('UPSTREAM_TIMEOUT', `upstream '${u.name}' did not answer the WebSocket handshake within ${u.timeoutMs} ms`, { className: ctx.klass?.name }),
            ),
          first,
        );
        if (connectOnly) {
          up.once('socket', (s) => {
            const rearm = (): void => {
              if (!timer) return;
              timer.cancel();
              const left = Math.max(0, u.timeoutMs - (o.clock.now() - ctx.upstreamStart));
              timer = o.clock.setTimer(
                () => fail(up, new ProxyError('UPSTREAM_TIMEOUT', `upstream '${u.name}' did not answer the WebSocket handshake within ${u.timeoutMs} ms`, { className: ctx.klass?.name })),
                left,
              );
            };
            if (s.connecting) s.once('connect', rearm);
            else rearm();
          });
        }
        const answered = (res: IncomingMessage): void => {
          timer?.cancel();
          timer = undefined;
          ctx.upstreamHeadersAt = o.clock.now();
          ctx.status = res.statusCode ?? 101;
        };
        up.once('upgrade', (res: IncomingMessage) => {
          answered(res);
          // Before http2-proxy writes the 101 from these headers (its listener comes after this one).
          const h = res.headers as Record<string, string | string[] | undefined>;
          applyResponseRules(ctx, h);
          pool.onResponse(ctx, member, h);
          opened = true;
          pool.succeeded(member);
          o.onOpen?.();
        });
        up.once('response', (res: IncomingMessage) => {
          answered(res);
          if (ctx.status >= 502 && ctx.status <= 504) pool.failed(member);
          else pool.succeeded(member);
        });
        return up;
      },
    } as never);
  } catch (err) {
    if (opened) return; // the tunnel was open: a close from either side ends it
    if (err instanceof ProxyError) {
      if (err.code !== 'BAD_REQUEST') pool.failed(member);
      throw err;
    }
    const e = err as NodeJS.ErrnoException & { statusCode?: number };
    if (e.statusCode === 400 || e.statusCode === 405) throw new ProxyError('BAD_REQUEST', `not a WebSocket handshake: ${e.message}`, { className: ctx.klass?.name });
    pool.failed(member);
    throw new ProxyError('UPSTREAM_UNREACHABLE', `websocket upstream '${u.name}' (${member.target.url}) failed: ${e.code ?? e.message}`, {
      className: ctx.klass?.name,
      cause: err,
    });
  } finally {
    timer?.cancel();
  }
}

function noop(): void {}
