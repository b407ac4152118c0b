/**
 * HTTP/2 to upstream targets: one multiplexed session per target (`protocol:
 * h2` over TLS with ALPN, `h2c` with prior knowledge), and a request object
 * with the `ClientRequest` surface http2-proxy drives (its documented `onReq`
 * hook may return any HTTP/2 client with that API).
 *
 * Why not http2-wrapper (2.2.4, MIT, engines >=10.19): it keeps trailers, but
 * its request reports a stream as a socket that never emits 'connect' while
 * the session connects (http2-proxy waits for it), only opens the stream on
 * the first write (http2-proxy writes after 'socket'), calls timeout listeners
 * with the stream as `this`, and refuses DELETE bodies. This adapter is small,
 * over node:http2 only, and carries trailers (grpc-status) to `res.trailers`
 * before 'end', as node:http's IncomingMessage does.
 *
 * The caller's maxConcurrent still counts requests: a session carries many,
 * each one a permit of the scheduler.
 */
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import type { ClientRequest, RequestOptions } from 'node:http';
import { EventEmitter } from 'node:events';
import { Readable, Writable } from 'node:stream';
import type { Target } from '../../policy/types.js';
import { tlsConnectOptions } from './tls.js';

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM } = constants;
const STREAM_WINDOW = 1024 * 1024;
const SESSION_WINDOW = 16 * 1024 * 1024;

/** Connection-specific headers HTTP/2 forbids (RFC 9113 §8.2.2); http2-proxy removes most already. */
const CONNECTION_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'te', 'http2-settings']);

export interface H2TargetOptions {
  /** Close the session after this long without streams. */
  idleTimeoutMs: number;
  /** A session not connected (TCP, TLS, ALPN, SETTINGS) by then is destroyed. */
  connectTimeoutMs: number;
}

/** One target's HTTP/2 session, opened on first use and again after it closes or receives GOAWAY. */
export class H2Target {
  private session: ClientHttp2Session | undefined;
  /** The 'socket' every request on the current session sees. */
  private view: SessionView | undefined;
  private readonly authority: string;
  private closed = false;

  constructor(
    readonly target: Target,
    private readonly opts: H2TargetOptions,
  ) {
    const host = target.hostname.includes(':') ? `[${target.hostname}]` : target.hostname;
    this.authority = `${target.tls ? 'https' : 'http'}://${host}:${target.port}`;
  }

  /** A ClientRequest-compatible request on this target's session (see H2Request). */
  request(options: RequestOptions): ClientRequest {
    const reused = this.session !== undefined && usable(this.session);
    const session = reused ? this.session! : this.open();
    return new H2Request(session, this.view!, reused, options, this.target) as unknown as ClientRequest;
  }

  private open(): ClientHttp2Session {
    const s = connect(this.authority, {
      ...(this.target.tls ? { ...tlsConnectOptions(this.target.tls), ALPNProtocols: ['h2'] } : {}),
      // Windows larger than the 64 KiB default, so one stream can fill a fast link; a paused
      // client stops window updates, so a stream still buffers at most this much.
      settings: { enablePush: false, initialWindowSize: STREAM_WINDOW },
      maxSessionMemory: 32,
    });
    this.session = s;
    this.view = new SessionView(s);
    s.once('connect', () => s.setLocalWindowSize(SESSION_WINDOW));
    const forget = (): void => {
      if (this.session === s) this.session = undefined;
    };
    // Streams already open finish; new requests go to a fresh session.
    s.once('goaway', forget);
    s.once('close', forget);
    s.on('error', forget); // streams on it get the error (as their `cause`)
    const timer = setTimeout(() => {
      if (s.connecting) s.destroy(Object.assign(new Error(`HTTP/2 connect to ${this.authority} timed out`), { code: 'ETIMEDOUT' }));
    }, this.opts.connectTimeoutMs);
    timer.unref();
    s.once('connect', () => clearTimeout(timer));
    s.once('close', () => clearTimeout(timer));
    s.setTimeout(this.opts.idleTimeoutMs, () => s.close());
    s.unref();
    if (this.closed) s.destroy();
    return s;
  }

  /** No new requests: the session closes once its streams end (a reload retired the upstream). */
  retire(): void {
    this.session?.close();
    this.session = undefined;
  }

  /** Shutdown: streams and session torn down. */
  destroy(): void {
    this.closed = true;
    this.session?.destroy();
    this.session = undefined;
  }
}

function usable(s: ClientHttp2Session): boolean {
  return !s.closed && !s.destroyed;
}

/** What http2-proxy and forward/proxy.ts ask of a request's socket: still connecting? and 'connect'. */
class SessionView extends EventEmitter {
  constructor(private readonly session: ClientHttp2Session) {
    super();
    // Every request opened while the session connects waits for its 'connect' here.
    this.setMaxListeners(0);
    if (session.connecting) session.once('connect', () => this.emit('connect'));
  }
  get connecting(): boolean {
    return this.session.connecting;
  }
}

/** The HTTP/2 response, shaped like node:http's IncomingMessage (status, headers, trailers before 'end'). */
class H2Response extends Readable {
  readonly statusCode: number;
  readonly statusMessage = '';
  readonly httpVersion = '2.0';
  readonly httpVersionMajor = 2;
  readonly httpVersionMinor = 0;
  headers: IncomingHttpHeaders;
  readonly trailers: Record<string, string | string[] | undefined> = {};
  complete = false;

  constructor(
    private readonly stream: ClientHttp2Stream,
    headers: IncomingHttpHeaders,
    private readonly req: H2Request,
  ) {
    super({ highWaterMark: stream.readableHighWaterMark });
    this.statusCode = Number(headers[':status'] ?? 502);
    this.headers = withoutPseudo(headers);
    stream.on('data', (d: Buffer) => {
      if (!this.push(d)) stream.pause();
    });
    stream.once('end', () => {
      // Node ends the readable side of a stream that was reset or whose session died, too:
      // only END_STREAM (rstCode still NO_ERROR) is a complete response; anything else is an abort.
      if ((stream.rstCode ?? NGHTTP2_NO_ERROR) !== NGHTTP2_NO_ERROR || stream.session?.destroyed) {
        this.emit('aborted');
        this.destroy(Object.assign(new Error(`upstream reset the HTTP/2 stream (code ${stream.rstCode})`), { code: 'ECONNRESET' }));
        return;
      }
      this.complete = true;
      this.push(null);
    });
  }

  addTrailers(t: IncomingHttpHeaders): void {
    Object.assign(this.trailers, withoutPseudo(t));
  }

  override _read(): void {
    this.stream.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.stream.destroyed) this.stream.close(NGHTTP2_CANCEL);
    cb(err);
  }

  setTimeout(ms: number, cb?: () => void): this {
    this.req.setTimeout(ms, cb);
    return this;
  }
}

/**
 * One request as a Writable with ClientRequest's events: 'socket' (a view whose
 * 'connect' is the session's), 'response', 'timeout', 'error', 'close'.
 */
class H2Request extends Writable {
  readonly method: string;
  readonly path: string;
  /** The session was connected before this request: a refused stream may be retried. */
  reusedSocket: boolean;
  readonly socket: SessionView;
  res: H2Response | undefined;
  private readonly stream: ClientHttp2Stream | undefined;

  constructor(session: ClientHttp2Session, view: SessionView, reused: boolean, options: RequestOptions, target: Target) {
    // autoDestroy off: after the body is sent the stream still answers; errors must still reach the caller.
    super({ autoDestroy: false, highWaterMark: 64 * 1024 });
    this.method = (options.method ?? 'GET').toUpperCase();
    this.path = options.path ?? '/';
    this.reusedSocket = reused && !session.connecting;
    this.socket = view;
    let stream: ClientHttp2Stream | undefined;
    try {
      stream = session.request(requestHeaders(options, this.method, this.path, target));
    } catch (err) {
      process.nextTick(() => this.destroy(err as Error));
    }
    this.stream = stream;
    if (stream) {
      stream.once('response', this.onResponse);
      stream.on('trailers', this.onTrailers);
      stream.on('error', this.onStreamError);
      stream.once('close', this.onStreamClose);
      stream.on('timeout', () => this.emit('timeout'));
    }
    process.nextTick(() => this.emit('socket', this.socket));
  }

  private readonly onResponse = (headers: IncomingHttpHeaders, flags: number): void => {
    if (this.res || this.destroyed) return;
    // With END_STREAM (a trailers-only gRPC answer) grpc-status is in these headers; the body is empty.
    void flags;
    this.res = new H2Response(this.stream!, headers, this);
    this.emit('response', this.res);
  };

  /** Trailers come before 'end'. A HEADERS frame with END_STREAM and no response before it is a response (nodejs/node#41251). */
  private readonly onTrailers = (t: IncomingHttpHeaders, flags: number): void => {
    if (!this.res) this.onResponse(t, flags);
    else this.res.addTrailers(t);
  };

  private readonly onStreamError = (err: NodeJS.ErrnoException): void => {
    // Streams pending on a session that failed to connect get ERR_HTTP2_STREAM_CANCEL; the cause is what happened.
    const root = (err.code === 'ERR_HTTP2_STREAM_CANCEL' && err.cause instanceof Error ? err.cause : err) as NodeJS.ErrnoException;
    if (this.stream?.rstCode === NGHTTP2_REFUSED_STREAM) markRefused(this, root);
    if (this.res && !this.res.complete) this.res.emit('aborted');
    this.destroy(root);
  };

  private readonly onStreamClose = (): void => {
    const code = this.stream!.rstCode;
    if (this.res) {
      if (!this.res.complete && code !== NGHTTP2_NO_ERROR) this.res.emit('aborted');
      if (!this.destroyed) this.destroy();
      return;
    }
    if (this.destroyed) return;
    const err: NodeJS.ErrnoException = new Error(`upstream closed the HTTP/2 stream before answering (code ${code})`);
    err.code = 'ECONNRESET';
    if (code === NGHTTP2_REFUSED_STREAM) markRefused(this, err);
    this.destroy(err);
  };

  override _write(chunk: Buffer, enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (!this.stream || this.stream.destroyed) return cb(new Error('HTTP/2 stream closed'));
    this.stream.write(chunk, enc, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.stream || this.stream.destroyed) return cb();
    this.stream.end(() => cb());
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.stream && !this.stream.destroyed) this.stream.close(NGHTTP2_CANCEL);
    cb(err);
  }

  setTimeout(ms: number, cb?: () => void): this {
    if (cb) this.once('timeout', cb);
    this.stream?.setTimeout(ms);
    return this;
  }

  // ClientRequest API that callers may touch; HTTP/2 has no socket options.
  setNoDelay(): void {}
  setSocketKeepAlive(): void {}
}

/** A stream the server refused (RST_STREAM REFUSED_STREAM, RFC 9113 §8.7) was not processed: safe to retry. */
function markRefused(req: H2Request, err: NodeJS.ErrnoException): void {
  req.reusedSocket = true;
  err.code = 'ECONNRESET';
}

function requestHeaders(options: RequestOptions, method: string, path: string, target: Target): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const given = (options.headers ?? {}) as Record<string, string | string[] | number | undefined>;
  let host: string | undefined;
  for (const [k, v] of Object.entries(given)) {
    if (v === undefined) continue;
    const name = k.toLowerCase();
    if (name === 'host') host = String(v);
    if (CONNECTION_HEADERS.has(name) || name.startsWith(':')) continue;
    out[name] = v;
  }
  const h = target.hostname.includes(':') ? `[${target.hostname}]` : target.hostname;
  out[':method'] = method;
  out[':path'] = path;
  out[':scheme'] = target.tls ? 'https' : 'http';
  out[':authority'] = host ?? `${h}:${target.port}`;
  // gRPC servers expect TE: trailers (the only TE value HTTP/2 allows); hop-by-hop handling removed the client's.
  const ct = given['content-type'];
  if (typeof ct === 'string' && ct.startsWith('application/grpc')) out.te = 'trailers';
  return out;
}

function withoutPseudo(h: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if (!k.startsWith(':')) out[k] = v;
  return out;
}
