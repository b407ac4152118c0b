/**
 * The TLS listener: HTTPS with ALPN `h2` and `http/1.1` on one port
 * (`http2.createSecureServer({ allowHTTP1: true })`, no sniffing needed),
 * certificates chosen by SNI, a minimum TLS version, optional client
 * certificates (mTLS), and certificates replaced on reload: new handshakes get
 * the new ones, open connections keep theirs (NGINX and Envoy SDS do the same).
 * It shares the request and upgrade handlers of the cleartext listener.
 */
import { systemClock, type Clock } from '../clock.js';
import { bind, unbind } from './bind.js';
import { createServer as createHttpServer } from 'node:http';
import { guardHandlers, refuseConnect } from './guard.js';
import { createSecureContext, type SecureContext, type SecureContextOptions, type TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import { X509Certificate } from 'node:crypto';
import {
  createSecureServer,
  type Http2SecureServer,
  type Http2ServerRequest,
  type SecureServerOptions,
  type ServerHttp2Session,
} from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Logger } from '../telemetry/log.js';
import type { TlsServerPolicy } from '../policy/types.js';
import type { ListenerHandlers, ListenerOptions } from './server.js';
import type { InboundRequest } from './context.js';
import type { ClientCertFacts } from '../classify/matchers.js';

/** What main.ts needs of any proxy listener (the cleartext Listener has the same shape). */
export interface ProxyListener {
  listen(port: number, host: string): Promise<{ host: string; port: number }>;
  stopAccepting(): Promise<void>;
  closeIdle(): void;
  destroyAll(): void;
}

/** Secure-context options of one certificate, shared by the default context and the SNI ones. */
function contextOptions(p: TlsServerPolicy, i: number): SecureContextOptions {
  const c = p.certificates[i]!;
  return { cert: c.cert, key: c.key, minVersion: p.minVersion, ...(p.clientCa !== undefined ? { ca: p.clientCa } : {}) };
}

/** Logs certificates that have expired or expire within 14 days (served anyway, as NGINX does). */
function warnExpiry(p: TlsServerPolicy, log: Logger): void {
  const now = Date.now();
  for (const c of p.certificates) {
    const until = Date.parse(new X509Certificate(c.cert).validTo);
    if (until < now) log.warn({ certificate: c.certFile, validTo: new Date(until).toISOString() }, 'TLS certificate has expired');
    else if (until - now < 14 * 86_400_000) log.warn({ certificate: c.certFile, validTo: new Date(until).toISOString() }, 'TLS certificate expires within 14 days');
  }
}

/** SNI name → secure context: exact names first, then "*.example.com" for one label. */
class SniTable {
  private readonly exact = new Map<string, SecureContext>();
  private readonly wildcard = new Map<string, SecureContext>();

  constructor(p: TlsServerPolicy) {
    p.certificates.forEach((c, i) => {
      // createSecureContext throws on a bad pair; the policy loader checked them already.
      const ctx = createSecureContext(contextOptions(p, i));
      for (const n of c.serverNames) {
        const table = n.startsWith('*.') ? this.wildcard : this.exact;
        const key = n.startsWith('*.') ? n.slice(2) : n;
        if (!table.has(key)) table.set(key, ctx);
      }
    });
  }

  /** undefined: use the server's default context (the first certificate). */
  find(servername: string): SecureContext | undefined {
    const name = servername.toLowerCase();
    const hit = this.exact.get(name);
    if (hit) return hit;
    const dot = name.indexOf('.');
    return dot === -1 ? undefined : this.wildcard.get(name.slice(dot + 1));
  }
}

export class TlsListener implements ProxyListener {
  readonly server: Http2SecureServer;
  private sni: SniTable;
  private readonly sockets = new Set<Socket>();
  private readonly sessions = new Set<ServerHttp2Session>();
  private readonly clock: Clock;
  private draining = false;

  constructor(
    handlers: ListenerHandlers,
    opts: ListenerOptions,
    tls: TlsServerPolicy,
    private readonly log: Logger,
  ) {
    this.sni = new SniTable(tls);
    this.clock = opts.clock ?? systemClock;
    warnExpiry(tls, log);
    const headersTimeout = opts.headersTimeoutMs ?? 10_000;
    const options: SecureServerOptions & { maxSessionInvalidFrames: number; maxSessionRejectedStreams: number } = {
      allowHTTP1: true,
      // As the cleartext listener: small responses go out at once, not after Nagle's delay.
      noDelay: true,
      ...contextOptions(tls, 0),
      requestCert: tls.clientCa !== undefined,
      rejectUnauthorized: tls.requireClientCert,
      SNICallback: (servername, cb) => cb(null, this.sni.find(servername)),
      // A client that stalls mid-handshake holds a socket; give it as long as a request head.
      handshakeTimeout: headersTimeout,
      maxHeaderListPairs: 256,
      maxSessionMemory: 16,
      maxSessionInvalidFrames: 100,
      maxSessionRejectedStreams: 100,
      settings: { maxConcurrentStreams: opts.maxConcurrentStreams ?? 128, maxHeaderListSize: opts.maxHeaderSize },
    };
    this.server = createSecureServer(options);
    // HTTP/1.1 over TLS is served by Node's HTTP/1.1 connection code, which reads these from the server.
    const h1 = this.server as unknown as {
      headersTimeout: number;
      requestTimeout: number;
      keepAliveTimeout: number;
      maxHeaderSize: number;
      connectionsCheckingInterval: number;
    };
    h1.headersTimeout = headersTimeout;
    h1.requestTimeout = 0;
    h1.keepAliveTimeout = opts.keepAliveTimeoutMs ?? 5_000;
    h1.maxHeaderSize = opts.maxHeaderSize;
    h1.connectionsCheckingInterval = Math.max(100, Math.min(1000, headersTimeout / 2));
    // The same checks as the cleartext listener (accept/guard.ts); a non-WebSocket upgrade is
    // replayed, already decrypted, into a plain HTTP/1.1 server that never listens.
    const plain = createHttpServer({ maxHeaderSize: opts.maxHeaderSize, headersTimeout, requestTimeout: 0, keepAliveTimeout: opts.keepAliveTimeoutMs ?? 5_000 });
    const guarded = guardHandlers(handlers, opts.maxHeaderSize, plain);
    plain.on('request', guarded.request);
    this.server.on('request', guarded.request);
    this.server.on('upgrade', guarded.upgrade);
    this.server.on('connect', refuseConnect);
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    this.server.on('session', (session) => {
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      if (this.draining) session.close();
    });
    // Node's secure HTTP/2 server reports TLS handshake failures (timeouts, garbage) as 'clientError' too:
    // only an HTTP/1.1 parse error (HPE_*) on an established connection gets an answer; the rest are dropped.
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      if (!socket.writable || !err.code?.startsWith('HPE_')) {
        socket.destroy();
        return;
      }
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    });
    this.server.on('tlsClientError', (err) => log.debug({ err }, 'TLS handshake failed'));
    this.server.on('sessionError', (err) => log.debug({ err }, 'http2 session error'));
    this.server.setTimeout((opts.keepAliveTimeoutMs ?? 5_000) * 12);
  }

  /**
   * New certificates (a reload): handshakes from now on use them; established
   * connections keep the ones they negotiated.
   */
  update(tls: TlsServerPolicy): void {
    const sni = new SniTable(tls);
    this.server.setSecureContext(contextOptions(tls, 0));
    const s = this.server as unknown as { requestCert: boolean; rejectUnauthorized: boolean };
    s.requestCert = tls.clientCa !== undefined;
    s.rejectUnauthorized = tls.requireClientCert;
    this.sni = sni;
    warnExpiry(tls, this.log);
    this.log.info({ certificates: tls.certificates.map((c) => c.certFile) }, 'TLS certificates reloaded');
  }

  listen(port: number, host: string): Promise<{ host: string; port: number }> {
    return bind(this.server, port, host);
  }

  stopAccepting(): Promise<void> {
    return unbind(this.server);
  }

  /** Draining: idle HTTP/1.1 connections close, HTTP/2 sessions get GOAWAY. */
  closeIdle(): void {
    this.draining = true;
    // Node's secure HTTP/2 server closes its idle HTTP/1.1 connections (allowHTTP1); @types/node 20 lacks the method.
    (this.server as unknown as { closeIdleConnections(): void }).closeIdleConnections();
    for (const s of this.sessions) {
      s.close();
      probeSession(s, this.clock);
    }
  }

  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
  }

  get connections(): number {
    return this.sockets.size;
  }
}

const certCache = new WeakMap<object, ClientCertFacts | null>();

/**
 * The client certificate of the request's connection, when one was sent and
 * verified against listen.tls.clientCa; undefined otherwise (cleartext, none
 * sent, or not verified). Parsed once per connection.
 */
export function verifiedClientCert(req: InboundRequest): ClientCertFacts | undefined {
  const session = (req as Http2ServerRequest).stream?.session;
  const socket = (session ? session.socket : req.socket) as TLSSocket | undefined;
  if (!socket || !(socket as { encrypted?: boolean }).encrypted) return undefined;
  const key: object = session ?? socket;
  let facts = certCache.get(key);
  if (facts === undefined) {
    facts = socket.authorized ? factsOf(socket) : null;
    certCache.set(key, facts);
  }
  return facts ?? undefined;
}

function factsOf(socket: TLSSocket): ClientCertFacts | null {
  const c = socket.getPeerCertificate();
  if (!c || Object.keys(c).length === 0) return null;
  const subject = Object.entries(c.subject ?? {})
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`)
    .join(',');
  const cn = c.subject?.CN;
  const san = (c.subjectaltname ?? '')
    .split(', ')
    .filter((e) => e !== '')
    .map((e) => e.slice(e.indexOf(':') + 1));
  return { subject, cn: Array.isArray(cn) ? cn[0] : cn, san };
}

/** Whether the request arrived over TLS (X-Forwarded-Proto, Forwarded proto=). */
export function isEncrypted(req: InboundRequest): boolean {
  // HTTP/2: ask the session (req.socket would build a Proxy per stream).
  const session = (req as Http2ServerRequest).stream?.session;
  if (session) return session.encrypted === true;
  return (req.socket as { encrypted?: boolean } | undefined)?.encrypted === true;
}

/**
 * Draining: a session whose peer is gone must not hold the drain for the whole
 * grace period. Node 20's secure HTTP/2 server can leave a session whose peer
 * closed the connection after a protocol error open (socket in CLOSE-WAIT, its
 * streams unsettled) until the session timeout; such a peer never acknowledges a
 * PING, a live one does within milliseconds. No acknowledgement within
 * PROBE_MS: the session is destroyed and its streams settle as client aborts.
 */
function probeSession(s: ServerHttp2Session, clock: Clock): void {
  if (s.destroyed) return;
  const timer = clock.setTimer(() => {
    if (!s.destroyed) s.destroy();
  }, PROBE_MS);
  try {
    s.ping((err) => {
      if (!err) timer.cancel();
    });
  } catch {
    // Too many unacknowledged pings, or the session is closing: the timer decides.
  }
}

const PROBE_MS = 2_000;

