/**
 * HTTP/1.1 to upstream targets through undici (a keep-alive `Pool` per target),
 * with the `ClientRequest` surface http2-proxy drives through its documented
 * `onReq` hook: 'socket' (once a connection is assigned and the request is about
 * to be written), 'response', 'error', `write`/`end` with 'drain', `setTimeout`,
 * `destroy`/`abort`, `reusedSocket`.
 *
 * Why undici rather than node:http's ClientRequest: in the same run (wrk, 64
 * connections, 1 KiB responses, one core) a bare proxy on undici's dispatcher
 * spends about 48 µs of CPU per request against about 106 µs for bare
 * http2-proxy on node:http (docs/benchmarks.md, scenario 1). Its llhttp parser
 * and socket handling are the same as Node's; the difference is what is built
 * per request (ClientRequest, IncomingMessage, agent bookkeeping, listeners).
 *
 * What stays on node:http (see `usesUndici`): requests with `Expect` (undici
 * refuses the header), and https:// targets without an SNI name (an IP address:
 * undici would take the SNI name from the Host header); and any request undici
 * refuses at dispatch (`H1Target.request` returns undefined), such as `OPTIONS *`.
 *
 * Timeouts: headers are sluice's own deadline (forward/proxy.ts), so undici's
 * headersTimeout is off; the connect timeout is undici's connector's (UND_ERR_CONNECT_TIMEOUT); the response-body idle timeout is undici's bodyTimeout,
 * reported through the callback given to `setTimeout` as Node's would be.
 */
import { EventEmitter } from 'node:events';
import type { ClientRequest, IncomingHttpHeaders, RequestOptions } from 'node:http';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import type { Socket } from 'node:net';
import type { Dispatcher, Pool as PoolType, buildConnector as BuildConnector } from 'undici';

/**
 * undici's Pool and connector alone: its package index also loads fetch, WebSocket, caching and
 * mocking, about 10 MB more RSS for nothing sluice uses (measured: 13-22 MB after 50 requests
 * against 30 MB). The paths are undici's own modules (no `exports` map restricts them); the version
 * is pinned in package.json and every upstream test goes through them.
 */
const requireUndici = createRequire(import.meta.url);
const Pool = requireUndici('undici/lib/dispatcher/pool.js') as typeof PoolType;
type Pool = PoolType;
const buildConnector = requireUndici('undici/lib/core/connect.js') as typeof BuildConnector;
import type { Target, UpstreamPolicy } from '../../policy/types.js';
import { tlsConnectOptions } from './tls.js';

/** Request headers undici sets itself or refuses (framing and connection management are its job). */
const OWN_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'te', 'proxy-connection', 'http2-settings']);

/** What a request needs beyond RequestOptions. */
export interface H1RequestHints {
  /** The request has a body (length or chunked) that will be written and ended. */
  readonly hasBody: boolean;
  /** Response body idle timeout (ms); 0: none. */
  readonly bodyIdleMs: number;
}

/** One target's undici pool, created on first use. */
export class H1Target {
  private pool: Pool | undefined;
  private closed = false;

  constructor(
    readonly target: Target,
    private readonly ka: UpstreamPolicy['keepAlive'],
    private readonly connectTimeoutMs: number,
  ) {}

  /** Whether requests with these headers go through undici (else node:http). */
  static usesUndici(target: Target, headers: RequestOptions['headers']): boolean {
    if (target.tls && !target.tls.servername) return false;
    return (headers as Record<string, unknown> | undefined)?.expect === undefined;
  }

  /** A ClientRequest-compatible request on this target's pool. */
  /**
   * undefined when undici refuses the request as given (it is stricter than node:http, e.g. about
   * `OPTIONS *`, whose target does not start with a slash): the caller sends it through node:http.
   */
  request(options: RequestOptions, hints: H1RequestHints): ClientRequest | undefined {
    const req = new H1Request(this.pool ?? this.open(), options, hints, this.target);
    return req.refused ? undefined : (req as unknown as ClientRequest);
  }

  private open(): Pool {
    const t = this.target;
    const host = t.hostname.includes(':') ? `[${t.hostname}]` : t.hostname;
    const pool = new Pool(`${t.tls ? 'https' : 'http'}://${host}:${t.port}`, {
      connections: this.ka.maxSockets,
      pipelining: 1,
      // Idle pooled connections close after this, or earlier when the target's Keep-Alive hint says so.
      keepAliveTimeout: this.ka.idleTimeoutMs,
      keepAliveMaxTimeout: this.ka.idleTimeoutMs,
      connect: connector(t, this.connectTimeoutMs),
      headersTimeout: 0,
    });
    pool.on('connectionError', noop);
    this.pool = pool;
    if (this.closed) void pool.destroy();
    return pool;
  }

  /** No new requests: idle connections close now, busy ones when their request ends (a reload retired the upstream). */
  retire(): void {
    const p = this.pool;
    this.pool = undefined;
    if (p) void p.close().catch(noop);
  }

  /** Shutdown: every connection closed, requests in flight fail. */
  destroy(): void {
    this.closed = true;
    const p = this.pool;
    this.pool = undefined;
    if (p) void p.destroy().catch(noop);
  }
}

/** On a socket error (a reset, a broken pipe): how many bytes the connection had read, as undici's own errors tell. */
const kBytesRead = Symbol('sluice.bytesRead');

/** undici's connector, with the TLS settings of the target; socket errors note the bytes read (see onError). */
function connector(t: Target, connectTimeoutMs: number): BuildConnector.connector {
  // The connect timeout is undici's (forward/proxy.ts times only the response headers of these requests):
  // a request waiting for a busy connection (maxSockets reached) is not connecting.
  const connect = buildConnector({ ...(t.tls ? tlsConnectOptions(t.tls) : {}), timeout: connectTimeoutMs });
  return (options, cb) => {
    connect(options, (err, socket) => {
      if (socket) socket.on('error', noteBytesRead);
      (cb as (e: Error | null, s: Socket | null) => void)(err, socket);
    });
  };
}

function noteBytesRead(this: Socket, err: Error & { [kBytesRead]?: number }): void {
  err[kBytesRead] = this.bytesRead;
}

/**
 * Whether `up` is an undici request: its connect is bounded by undici's connector (connectTimeout,
 * TLS handshake included), and its wait for a busy pooled connection is no connect at all.
 */
export function connectsItself(up: object): boolean {
  return up instanceof H1Request;
}

/** The socket http2-proxy and forward/proxy.ts look at: undici tells a request about its connection only once connected. */
const CONNECTED = Object.freeze({ connecting: false });

/** The response, shaped like node:http's IncomingMessage (status, headers, trailers before 'end'). */
class H1Response extends Readable {
  readonly httpVersion = '1.1';
  readonly httpVersionMajor = 1;
  readonly httpVersionMinor = 1;
  readonly trailers: Record<string, string | string[] | undefined> = {};
  complete = false;
  /** undici's resume of the connection's reads; called when a consumer wants more after onData returned false. */
  resumeUpstream: () => void = noop;
  upstreamPaused = false;
  /** Called once the target has sent the whole response (before a slow consumer has read it). */
  onUpstreamComplete: (() => void) | undefined;

  constructor(
    readonly statusCode: number,
    readonly statusMessage: string,
    readonly headers: IncomingHttpHeaders,
    readonly rawHeaders: string[],
    private readonly req: H1Request,
  ) {
    super({ highWaterMark: 64 * 1024 });
  }

  override _read(): void {
    if (this.upstreamPaused) {
      this.upstreamPaused = false;
      this.resumeUpstream();
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.complete) this.req.destroy();
    cb(err);
  }
}

/**
 * One request: an EventEmitter with ClientRequest's methods and events, and the
 * undici dispatch handler of itself (legacy handler API: onConnect, onHeaders,
 * onData, onComplete, onError).
 */
class H1Request extends EventEmitter implements Dispatcher.DispatchHandler {
  readonly method: string;
  readonly path: string;
  reusedSocket = false;
  socket: typeof CONNECTED | undefined;
  res: H1Response | undefined;
  destroyed = false;
  writableEnded = false;
  private abortUpstream: ((err?: Error) => void) | undefined;
  private abortReason: Error | undefined;
  private readonly body: Readable | undefined;
  private wantDrain = false;
  private onIdle: (() => void) | undefined;
  /** Inside pool.dispatch: an error now must wait until http2-proxy listens for it. */
  private dispatching = true;
  /** undici refused the request inside pool.dispatch (an argument it does not accept): nothing was sent. */
  refused = false;
  /** The target has begun a response (a first byte of its status line, 1xx included). */
  private responseStarted = false;

  constructor(pool: Pool, options: RequestOptions, hints: H1RequestHints, target: Target) {
    super();
    this.method = (options.method ?? 'GET').toUpperCase();
    this.path = options.path ?? '/';
    const headers: string[] = [];
    const given = options.headers as Record<string, string | string[] | number | undefined> | undefined;
    if (given) {
      for (const k in given) {
        const v = given[k];
        if (v === undefined || OWN_HEADERS.has(k)) continue;
        if (Array.isArray(v)) for (const item of v) headers.push(k, item);
        else headers.push(k, typeof v === 'string' ? v : String(v));
      }
    }
    if (hints.hasBody) {
      this.body = new Readable({ highWaterMark: 64 * 1024, read: () => this.onBodyRead() });
    }
    const opts: Dispatcher.DispatchOptions = {
      path: this.path,
      method: this.method as Dispatcher.HttpMethod,
      headers,
      body: this.body ?? null,
      headersTimeout: 0,
      bodyTimeout: hints.bodyIdleMs,
      // undici closes the connection after a HEAD (servers that send a body anyway); Node's client keeps it.
      ...(this.method === 'HEAD' ? { reset: false } : {}),
      ...(target.tls ? { servername: target.tls.servername } : {}),
    };
    pool.dispatch(opts, this);
    this.dispatching = false;
  }

  // --- ClientRequest surface -------------------------------------------------

  write(chunk: Buffer | string): boolean {
    const body = this.body;
    if (!body || this.destroyed) return false;
    if (body.push(chunk)) return true;
    this.wantDrain = true;
    return false;
  }

  end(chunk?: Buffer | string | (() => void)): this {
    if (typeof chunk === 'function') chunk = undefined;
    if (chunk) this.write(chunk);
    if (!this.writableEnded) {
      this.writableEnded = true;
      this.body?.push(null);
    }
    return this;
  }

  setTimeout(_ms: number, cb?: () => void): this {
    // The response body idle timeout was given to undici at dispatch (bodyTimeout); this names who hears of it.
    this.onIdle = cb;
    return this;
  }

  destroy(err?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    const res = this.res;
    if (res && !res.complete) {
      // Node's ClientRequest: the response is aborted too.
      res.emit('aborted');
      res.destroy(err);
    }
    if (!res?.complete) {
      if (this.abortUpstream) this.abortUpstream(err);
      else this.abortReason = err ?? new Error('aborted');
    }
    this.body?.destroy();
    if (err) process.nextTick(emitError, this, err);
    return this;
  }

  abort(): void {
    this.destroy();
  }

  setNoDelay(): void {}
  setSocketKeepAlive(): void {}

  private onBodyRead(): void {
    if (this.wantDrain) {
      this.wantDrain = false;
      this.emit('drain');
    }
  }

  // --- undici dispatch handler ------------------------------------------------

  onConnect(abort: (err?: Error) => void): void {
    if (this.destroyed) {
      // Gone while queued for a connection. undici's abort() would also destroy that connection (a
      // pooled one, or one just opened for this request); a throw here errors the request before
      // anything is written and leaves the connection to the next request.
      throw this.abortReason ?? new Error('aborted');
    }
    this.abortUpstream = abort;
    this.socket = CONNECTED;
    this.emit('socket', CONNECTED);
  }

  onResponseStarted(): void {
    this.responseStarted = true;
  }

  onHeaders(statusCode: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    if (this.destroyed) return false;
    if (statusCode < 200) return true; // 1xx: Node's client would emit 'information'; http2-proxy does not forward them
    const rawHeaders = new Array<string>(raw.length);
    for (let i = 0; i < raw.length; i++) rawHeaders[i] = raw[i]!.toString('latin1');
    const res = new H1Response(statusCode, statusText, nodeHeaders(rawHeaders), rawHeaders, this);
    res.resumeUpstream = resume;
    this.res = res;
    this.emit('response', res);
    return true;
  }

  onData(chunk: Buffer): boolean {
    const res = this.res;
    if (!res || res.destroyed) return true;
    if (res.push(chunk)) return true;
    res.upstreamPaused = true;
    return false;
  }

  onComplete(rawTrailers: Buffer[] | string[] | null): void {
    const res = this.res;
    if (!res) return;
    if (rawTrailers && rawTrailers.length > 0) {
      const t: string[] = [];
      for (const x of rawTrailers) t.push(typeof x === 'string' ? x : x.toString('latin1'));
      Object.assign(res.trailers, nodeHeaders(t));
    }
    res.complete = true;
    res.onUpstreamComplete?.();
    res.push(null);
  }

  onError(err: Error): void {
    if (this.destroyed) return;
    const e = err as NodeJS.ErrnoException & { socket?: { bytesRead?: number } };
    if (e.code === 'UND_ERR_BODY_TIMEOUT' && this.onIdle) {
      this.onIdle.call(this);
      if (this.destroyed) return;
    }
    const res = this.res;
    if (res && !res.complete && e.code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' && NO_BODY.has(res.statusCode)) {
      // A 304 may carry the Content-Length of the representation (RFC 9110 8.6), a 204 should not but does;
      // neither has a body (undici checks the length anyway, and has closed the connection): the response is whole.
      this.onComplete(null);
      return;
    }
    if ((e.code === 'UND_ERR_SOCKET' || e.code === 'ECONNRESET' || e.code === 'EPIPE') && !res) {
      // The target closed the connection before answering. When it had not begun an answer to this
      // request on a connection that had already carried one, this is a pooled socket the target timed
      // out (Node: ECONNRESET, reusedSocket). Bytes read on a fresh connection are this request's answer.
      this.reusedSocket = !this.responseStarted && (e.socket?.bytesRead ?? (e as { [kBytesRead]?: number })[kBytesRead] ?? 0) > 0;
      e.code = 'ECONNRESET';
    }
    this.destroyed = true;
    this.body?.destroy();
    if (res && !res.complete) {
      res.emit('aborted');
      res.destroy(err);
    }
    if (this.dispatching && (e.code === 'UND_ERR_INVALID_ARG' || e.code === 'UND_ERR_NOT_SUPPORTED')) {
      this.refused = true;
      return;
    }
    if (this.dispatching) setImmediate(emitError, this, err);
    else this.emit('error', err);
  }
}

/**
 * Calls `fn` (with the response as `this`) once the target has sent all of an undici response,
 * which may be before its reader has consumed it; false for other responses (use their 'end').
 */
export function onUpstreamComplete(res: Readable, fn: (this: Readable) => void): boolean {
  if (!(res instanceof H1Response)) return false;
  res.onUpstreamComplete = fn.bind(res);
  return true;
}

function emitError(req: H1Request, err: Error): void {
  req.emit('error', err);
}

/** Statuses that never have a body whatever their framing headers say (RFC 9112 6.3). */
const NO_BODY = new Set([204, 304]);

/** Header fields whose duplicates node:http drops (the first is kept), as in IncomingMessage#_addHeaderLine. */
const SINGLE = new Set([
  'content-type', 'content-length', 'user-agent', 'referer', 'host', 'authorization', 'proxy-authorization',
  'if-modified-since', 'if-unmodified-since', 'from', 'location', 'max-forwards', 'retry-after', 'etag',
  'last-modified', 'server', 'age', 'expires',
]);

/** Raw header pairs to node:http's `headers`: lower-case names, set-cookie a list, other repeats joined. */
function nodeHeaders(raw: string[]): IncomingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase();
    const v = raw[i + 1]!;
    const prior = out[k];
    if (prior === undefined) out[k] = k === 'set-cookie' ? [v] : v;
    else if (k === 'set-cookie') (prior as string[]).push(v);
    else if (!SINGLE.has(k)) out[k] = `${prior as string}${k === 'cookie' ? '; ' : ', '}${v}`;
  }
  return out;
}

function noop(): void {}
