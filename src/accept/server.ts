/**
 * One port, two protocols. Node 20's cleartext http2 server cannot fall back
 * to HTTP/1.1 (allowHTTP1 needs TLS+ALPN), so each new connection is sniffed:
 * a connection that opens with the HTTP/2 preface ("PRI * HTTP/2.0") goes to
 * the http2 server, anything else to the HTTP/1.1 server.
 */
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse, type Server as HttpServer } from 'node:http';
import { createServer as createH2Server, type Http2ServerRequest, type Http2ServerResponse, type Http2Server } from 'node:http2';
import { Duplex } from 'node:stream';
import type { Logger } from '../telemetry/log.js';
import { kPeer, type Peer } from './context.js';

export interface ListenerHandlers {
  request(req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void;
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
}

export interface ListenerOptions {
  maxHeaderSize: number;
  /** Whole request headers must arrive within this (slowloris). Default 30s. */
  headersTimeoutMs?: number;
  /** Idle keep-alive connections are closed after this. Default 5s. */
  keepAliveTimeoutMs?: number;
  /** HTTP/2 streams per connection. Default 128. */
  maxConcurrentStreams?: number;
}

const PREFACE = Buffer.from('PRI * HTTP/2.0');

export class Listener {
  readonly net: NetServer;
  readonly http1: HttpServer;
  readonly http2: Http2Server;
  private readonly sockets = new Set<Socket>();
  private pendingPeer: Peer | undefined;

  constructor(handlers: ListenerHandlers, opts: ListenerOptions, log: Logger) {
    this.http1 = createHttpServer({
      maxHeaderSize: opts.maxHeaderSize,
      headersTimeout: opts.headersTimeoutMs ?? 30_000,
      requestTimeout: 0, // bodies may stream for long; idle body timeouts are per-route work
      keepAliveTimeout: opts.keepAliveTimeoutMs ?? 5_000,
    });
    this.http1.on('request', handlers.request);
    this.http1.on('upgrade', handlers.upgrade);
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

    this.http2 = createH2Server({
      maxHeaderListPairs: 256,
      maxSessionMemory: 16,
      settings: {
        maxConcurrentStreams: opts.maxConcurrentStreams ?? 128,
        maxHeaderListSize: opts.maxHeaderSize,
      },
    });
    this.http2.on('request', handlers.request);
    // 'session' is emitted synchronously from emit('connection'), so pendingPeer is this session's.
    this.http2.on('session', (session) => {
      if (this.pendingPeer) (session as unknown as { [kPeer]: Peer })[kPeer] = this.pendingPeer;
    });
    this.http2.on('sessionError', (err) => log.debug({ err }, 'http2 session error'));
    this.http2.setTimeout(opts.keepAliveTimeoutMs ?? 120_000);

    this.net = createNetServer({ pauseOnConnect: false, noDelay: true }, (socket) => this.sniff(socket));
  }

  private sniff(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', noop);
    let seen: Buffer | undefined;
    const onData = (chunk: Buffer): void => {
      seen = seen ? Buffer.concat([seen, chunk]) : chunk;
      const n = Math.min(seen.length, PREFACE.length);
      const isH2 = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (isH2 && n < PREFACE.length) return; // wait for enough bytes to be sure
      socket.removeListener('data', onData);
      socket.pause();
      if (isH2) {
        // The http2 session reads the socket's handle directly, past any unshifted bytes,
        // so it gets a stream that replays what was sniffed and then relays the socket.
        this.pendingPeer = {
          remoteAddress: socket.remoteAddress ?? '',
          localAddress: socket.localAddress ?? '',
          localPort: socket.localPort ?? 0,
        };
        this.http2.emit('connection', new Replay(socket, seen));
        this.pendingPeer = undefined;
      } else {
        socket.unshift(seen);
        this.http1.emit('connection', socket);
        socket.resume();
      }
    };
    socket.on('data', onData);
  }

  listen(port: number, host: string): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.net.once('error', reject);
      this.net.listen(port, host, () => {
        this.net.off('error', reject);
        const a = this.net.address();
        if (a && typeof a === 'object') resolve({ host: a.address, port: a.port });
        else reject(new Error('listener has no address'));
      });
    });
  }

  /** Stops accepting; existing connections keep going. */
  stopAccepting(): Promise<void> {
    return new Promise((resolve) => this.net.close(() => resolve()));
  }

  /** Closes idle keep-alive HTTP/1.1 sockets and sends GOAWAY on HTTP/2 sessions. */
  closeIdle(): void {
    this.http1.closeIdleConnections();
    this.http2.close();
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
