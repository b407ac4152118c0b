/**
 * One port, two protocols. Node 20's cleartext http2 server cannot fall back
 * to HTTP/1.1 (allowHTTP1 needs TLS+ALPN), so each new connection is sniffed:
 * a connection that opens with the HTTP/2 preface ("PRI * HTTP/2.0") goes to
 * the http2 server, anything else to the HTTP/1.1 server.
 */
import { bind, unbind } from './bind.js';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse, type Server as HttpServer } from 'node:http';
import {
  createServer as createH2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Server,
  type ServerHttp2Session,
  type ServerOptions,
} from 'node:http2';
import { Duplex } from 'node:stream';
import type { Logger } from '../telemetry/log.js';
import { systemClock, type Clock, type TimerHandle } from '../clock.js';
import { kPeer, type Peer } from './context.js';
import { guardHandlers, refuseConnect } from './guard.js';

export interface ListenerHandlers {
  request(req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void;
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
}

export interface ListenerOptions {
  maxHeaderSize: number;
  /** Whole request headers must arrive within this (slowloris). Default 10s. */
  headersTimeoutMs?: number;
  /** Idle keep-alive connections are closed after this. Default 5s. */
  keepAliveTimeoutMs?: number;
  /** HTTP/2 streams per connection. Default 128. */
  maxConcurrentStreams?: number;
  /** Clock for the per-connection request-head deadline. Default: the system clock. */
  clock?: Clock;
}

/** The request-head deadline of a connection, armed at accept and cancelled when its first request head is complete. */
const kHeadDeadline = Symbol('sluice.headDeadline');
type WithDeadline = { [kHeadDeadline]?: TimerHandle | undefined };

function settleHead(socket: unknown): void {
  const s = socket as WithDeadline | null | undefined;
  const t = s?.[kHeadDeadline];
  if (t) {
    t.cancel();
    s[kHeadDeadline] = undefined;
  }
}

const PREFACE = Buffer.from('PRI * HTTP/2.0');

export class Listener {
  readonly net: NetServer;
  readonly http1: HttpServer;
  readonly http2: Http2Server;
  private readonly sockets = new Set<Socket>();
  private pendingPeer: Peer | undefined;
  private pendingSocket: Socket | undefined;
  private readonly clock: Clock;
  private readonly headersTimeoutMs: number;
  private readonly maxHeaderSize: number;
  private readonly sessions = new Set<ServerHttp2Session>();
  /** Set by closeIdle: sessions opened from now on are told to go away at once. */
  private draining = false;

  constructor(handlers: ListenerHandlers, opts: ListenerOptions, log: Logger) {
    const headersTimeout = opts.headersTimeoutMs ?? 10_000;
    this.headersTimeoutMs = headersTimeout;
    this.maxHeaderSize = opts.maxHeaderSize;
    this.clock = opts.clock ?? systemClock;
    this.http1 = createHttpServer({
      maxHeaderSize: opts.maxHeaderSize,
      headersTimeout,
      // Node checks headersTimeout only this often (30 s by default), which would let a slowloris linger.
      connectionsCheckingInterval: Math.max(100, Math.min(1000, headersTimeout / 2)),
      requestTimeout: 0, // bodies may stream for long; a stalled body is caught by requestBodyIdle
      keepAliveTimeout: opts.keepAliveTimeoutMs ?? 5_000,
      // Host is checked in accept/host.ts with the other authority rules, answered as problem+json.
      requireHostHeader: false,
    });
    // The HTTP/1.1 server never listens itself (the sniffing server hands it sockets), but its
    // connection tracking, which enforces headersTimeout and closeIdleConnections(), starts on
    // 'listening'; start it explicitly.
    this.http1.emit('listening');
    const guarded = guardHandlers(handlers, this.maxHeaderSize, this.http1, settleHead);
    this.http1.on('request', guarded.request);
    this.http1.on('upgrade', guarded.upgrade);
    this.http1.on('connect', refuseConnect);
    this.http1.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      // Node's default answers 400/431; keep it, but never let a bad client throw.
      // A parse error comes between requests on a keep-alive socket, so an answer can still be written.
      if (!socket.writable || err.code === 'ECONNRESET') {
        socket.destroy();
        return;
      }
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    });

    const h2Options: ServerOptions & { maxSessionInvalidFrames: number; maxSessionRejectedStreams: number } = {
      maxHeaderListPairs: 256,
      maxSessionMemory: 16,
      // Flood guards: a session that sends this many invalid frames, or makes the server
      // refuse this many streams, is torn down (Node also mitigates rapid reset, CVE-2023-44487).
      // Node supports both options; @types/node 20 does not declare them.
      maxSessionInvalidFrames: 100,
      maxSessionRejectedStreams: 100,
      settings: {
        maxConcurrentStreams: opts.maxConcurrentStreams ?? 128,
        maxHeaderListSize: opts.maxHeaderSize,
      },
    };
    this.http2 = createH2Server(h2Options);
    this.http2.on('request', guarded.request);
    // 'session' is emitted synchronously from emit('connection'), so pendingPeer is this session's.
    this.http2.on('session', (session) => {
      if (this.pendingPeer) (session as unknown as { [kPeer]: Peer })[kPeer] = this.pendingPeer;
      const raw = this.pendingSocket;
      if (raw) session.once('stream', () => settleHead(raw));
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      if (this.draining) session.close();
    });
    this.http2.on('sessionError', (err) => log.debug({ err }, 'http2 session error'));
    // HTTP/2 clients multiplex over few long-lived sessions; closing them as eagerly as HTTP/1.1 sockets costs handshakes.
    this.http2.setTimeout((opts.keepAliveTimeoutMs ?? 5_000) * 12);

    this.net = createNetServer({ pauseOnConnect: false, noDelay: true }, (socket) => this.sniff(socket));
  }

  private sniff(socket: Socket): void {
    this.sockets.add(socket);
    // Counted from accept, not from the first byte: a connection that sends nothing, or only
    // part of the HTTP/2 preface, or an HTTP/2 session that opens no stream, is closed too.
    const deadline = this.clock.setTimer(() => this.headTimedOut(socket), this.headersTimeoutMs);
    (socket as WithDeadline)[kHeadDeadline] = deadline;
    socket.once('close', () => {
      this.sockets.delete(socket);
      settleHead(socket);
    });
    socket.on('error', noop);
    let seen: Buffer | undefined;
    const onData = (chunk: Buffer): void => {
      seen = seen ? Buffer.concat([seen, chunk]) : chunk;
      const n = Math.min(seen.length, PREFACE.length);
      const isH2 = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (isH2 && n < PREFACE.length) return; // wait for enough bytes to be sure
      socket.removeListener('data', onData);
      socket.pause();
      const first = seen;
      // The 'close' listener above shares this closure's scope: let go of the bytes now,
      // or every connection would hold its first chunk for as long as it stays open.
      seen = undefined;
      if (isH2) {
        // The http2 session reads the socket's handle directly, past any unshifted bytes,
        // so it gets a stream that replays what was sniffed and then relays the socket.
        this.pendingPeer = {
          remoteAddress: socket.remoteAddress ?? '',
          localAddress: socket.localAddress ?? '',
          localPort: socket.localPort ?? 0,
        };
        this.pendingSocket = socket;
        this.http2.emit('connection', new Replay(socket, first));
        this.pendingPeer = undefined;
        this.pendingSocket = undefined;
      } else {
        socket.unshift(first);
        this.http1.emit('connection', socket);
        socket.resume();
      }
    };
    socket.on('data', onData);
  }

  /**
   * No complete request head within requestHeaders of accept. A connection the HTTP/1.1
   * server holds gets 408 (as Node's own headersTimeout answers); anything else is closed.
   */
  private headTimedOut(socket: Socket): void {
    (socket as WithDeadline)[kHeadDeadline] = undefined;
    if (socket.destroyed) return;
    const h1 = (socket as { parser?: unknown }).parser !== undefined && (socket as { parser?: unknown }).parser !== null;
    if (h1 && socket.writable) {
      socket.end('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      socket.once('finish', () => socket.destroy());
      this.clock.setTimer(() => socket.destroy(), 1000);
      return;
    }
    socket.destroy();
  }

  listen(port: number, host: string): Promise<{ host: string; port: number }> {
    return bind(this.net, port, host);
  }

  /** Stops accepting; existing connections keep going. */
  stopAccepting(): Promise<void> {
    return unbind(this.net);
  }

  /**
   * Starts draining: idle keep-alive HTTP/1.1 sockets close now (busy ones after
   * their response, which carries Connection: close), HTTP/2 sessions get GOAWAY
   * and close when their open streams end.
   */
  closeIdle(): void {
    this.draining = true;
    this.http1.closeIdleConnections();
    for (const s of this.sessions) s.close();
  }

  get isDraining(): boolean {
    return this.draining;
  }

  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
  }

  get connections(): number {
    return this.sockets.size;
  }
}

function noop(): void {}

/** A duplex over a socket that first yields bytes already read from it. */
class Replay extends Duplex {
  constructor(
    private readonly socket: Socket,
    head: Buffer,
  ) {
    super({ allowHalfOpen: false });
    this.push(head);
    socket.on('data', (d: Buffer) => {
      if (!this.push(d)) socket.pause();
    });
    socket.once('end', () => this.push(null));
    socket.once('close', () => this.destroy());
    socket.on('error', (err) => this.destroy(err));
  }
  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }
  get remotePort(): number | undefined {
    return this.socket.remotePort;
  }
  get remoteFamily(): string | undefined {
    return this.socket.remoteFamily;
  }
  get localAddress(): string | undefined {
    return this.socket.localAddress;
  }
  get localPort(): number | undefined {
    return this.socket.localPort;
  }
  setTimeout(ms: number, cb?: () => void): this {
    this.socket.setTimeout(ms, cb);
    return this;
  }
  setNoDelay(v?: boolean): this {
    this.socket.setNoDelay(v);
    return this;
  }
  setKeepAlive(v?: boolean, d?: number): this {
    this.socket.setKeepAlive(v, d);
    return this;
  }
  override _read(): void {
    this.socket.resume();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.socket.write(chunk, cb);
  }
  override _final(cb: (err?: Error | null) => void): void {
    this.socket.end(cb);
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket.destroy();
    cb(err);
  }
}
