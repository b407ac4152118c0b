/**
 * Backends for TLS and HTTP/2 upstream tests: HTTPS/1.1 (any certificate,
 * optionally requiring a client certificate), HTTP/2 over TLS and h2c. Each
 * echoes what it saw as JSON, counts concurrency and connections, honours
 * ?delay=MS, and /trailers answers with a trailer.
 */
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createSecureServer, createServer as createH2cServer, type Http2Server, type Http2SecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer } from 'ws';

export interface EchoBackend {
  port: number;
  inFlight: number;
  maxInFlight: number;
  /** TCP connections accepted so far. */
  connections: number;
  close(): Promise<void>;
}

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

function handler(b: EchoBackend): (req: Req, res: Res) => void {
  return (req, res) => {
    b.inFlight++;
    b.maxInFlight = Math.max(b.maxInFlight, b.inFlight);
    let done = false;
    res.on('close', () => {
      if (!done) {
        done = true;
        b.inFlight--;
      }
    });
    const url = new URL(req.url ?? '/', 'http://x');
    const delay = Number(url.searchParams.get('delay') ?? 0);
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () =>
      setTimeout(() => {
        const sock = req.socket as TLSSocket;
        const out = JSON.stringify({
          path: url.pathname,
          httpVersion: req.httpVersion,
          servername: (sock as { servername?: string | false }).servername ?? null,
          clientCert: sock.getPeerCertificate ? (sock.getPeerCertificate()?.subject?.CN ?? null) : null,
          headers: req.headers,
          body,
        });
        if (url.pathname.endsWith('/rst') || url.pathname.endsWith('/kill')) {
          // Headers and part of the body, then the stream (/rst) or the whole session (/kill) dies.
          (res as Http2ServerResponse).writeHead(200, { 'content-type': 'text/plain' });
          (res as Http2ServerResponse).write('partial');
          const stream = (req as Http2ServerRequest).stream;
          setTimeout(() => (url.pathname.endsWith('/rst') ? stream.close(2) : stream.session?.destroy()), 30);
          return;
        }
        if (url.pathname.endsWith('/trailers')) {
          (res as Http2ServerResponse).writeHead(200, { 'content-type': 'application/json', trailer: 'x-checksum' });
          (res as Http2ServerResponse).write(out);
          res.addTrailers({ 'x-checksum': String(out.length) });
          res.end();
          return;
        }
        (res as Http2ServerResponse).writeHead(200, { 'content-type': 'application/json' });
        res.end(out);
        // /goaway: answer, then close the HTTP/2 session gracefully (GOAWAY), as a server being redeployed does.
        if (url.pathname.endsWith('/goaway')) (req as Http2ServerRequest).stream?.session?.close();
      }, delay),
    );
  };
}

function track(server: HttpsServer | Http2Server | Http2SecureServer, b: EchoBackend): () => Promise<void> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    b.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
}

async function listen(server: HttpsServer | Http2Server | Http2SecureServer, b: EchoBackend): Promise<EchoBackend> {
  const close = track(server, b);
  b.close = close;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  b.port = (server.address() as AddressInfo).port;
  return b;
}

const blank = (): EchoBackend => ({ port: 0, inFlight: 0, maxInFlight: 0, connections: 0, close: async () => {} });

export function startHttpsBackend(cert: string, key: string, clientCa?: string): Promise<EchoBackend> {
  const b = blank();
  const server = createHttpsServer(
    { cert, key, ...(clientCa ? { ca: clientCa, requestCert: true, rejectUnauthorized: true } : {}) },
    handler(b),
  );
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (m) => ws.send(`tls-echo:${m.toString()}`)));
  return listen(server, b);
}

export function startH2Backend(cert: string, key: string): Promise<EchoBackend> {
  const b = blank();
  return listen(createSecureServer({ cert, key }, handler(b)), b);
}

export function startH2cBackend(): Promise<EchoBackend> {
  const b = blank();
  return listen(createH2cServer(handler(b)), b);
}
