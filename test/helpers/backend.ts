/**
 * A real backend for tests: counts its own concurrency, can be slow, echoes,
 * streams large bodies, resets, hangs, and speaks WebSocket.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer } from 'ws';

export interface BackendOptions {
  /** Milliseconds each request takes before answering (also ?delay=MS per request). */
  delayMs?: number;
  /** Sent back in an x-backend-id header on echo answers (which target served). */
  id?: string;
}

export interface Backend {
  url: string;
  port: number;
  server: Server;
  /** Highest number of requests in progress at once. */
  maxInFlight: number;
  inFlight: number;
  /** Requests received, by path. */
  hits: string[];
  /** Headers of the last request. */
  lastHeaders: IncomingMessage['headers'];
  /** GET /healthz answers 200 while true, 503 while false. */
  healthy: boolean;
  /** GET /healthz requests received. */
  healthChecks: number;
  reset(): void;
  close(): Promise<void>;
}

export async function startBackend(opts: BackendOptions = {}): Promise<Backend> {
  const sockets = new Set<Socket>();
  const b: Backend = {
    url: '',
    port: 0,
    server: undefined as unknown as Server,
    maxInFlight: 0,
    inFlight: 0,
    hits: [],
    lastHeaders: {},
    healthy: true,
    healthChecks: 0,
    reset() {
      b.maxInFlight = b.inFlight;
      b.hits = [];
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        b.server.close(() => r());
      }),
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/healthz') {
      b.healthChecks++;
      res.writeHead(b.healthy ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(b.healthy ? 'ok' : 'down');
      return;
    }
    b.hits.push(url.pathname);
    b.lastHeaders = req.headers;
    b.inFlight++;
    b.maxInFlight = Math.max(b.maxInFlight, b.inFlight);
    let done = false;
    const finish = (): void => {
      if (!done) {
        done = true;
        b.inFlight--;
      }
    };
    res.on('close', finish);
    const delay = Number(url.searchParams.get('delay') ?? opts.delayMs ?? 0);
    const act = (): void => {
      const p = url.pathname;
      if (p === '/reset') {
        req.socket.destroy();
        return;
      }
      if (p === '/reset-mid') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('partial');
        setTimeout(() => req.socket.destroy(), 20);
        return;
      }
      if (p === '/hang') return; // never answers
      if (p === '/set-cookie') {
        // An application session cookie: ?name=N&value=V.
        res.writeHead(200, {
          'set-cookie': `${url.searchParams.get('name')}=${url.searchParams.get('value')}; Path=/; HttpOnly`,
          ...(opts.id ? { 'x-backend-id': opts.id } : {}),
        });
        res.end('session set');
        return;
      }
      if (p === '/drop-after') {
        // Answers as if keeping the connection, then closes it: the next request on it meets a dead socket.
        res.end('dropped-after', () => req.socket.destroy());
        return;
      }
      if (p === '/stall') {
        // Headers and a first chunk, then silence (a stalled upstream).
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first');
        return;
      }
      if (p === '/bytes') {
        // Streams N bytes without holding them: backpressure-aware generator.
        const total = Number(url.searchParams.get('n') ?? 1024);
        const chunk = Buffer.alloc(64 * 1024, 97);
        let sent = 0;
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
        const pump = (): void => {
          while (sent < total) {
            const n = Math.min(chunk.length, total - sent);
            sent += n;
            if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
        return;
      }
      if (p === '/count') {
        // Counts request body bytes without keeping them.
        let n = 0;
        req.on('data', (d: Buffer) => (n += d.length));
        req.on('end', () => res.end(JSON.stringify({ bytes: n })));
        return;
      }
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (body += d));
      req.on('end', () => {
        const out = JSON.stringify({ method: req.method, path: p, url: req.url, headers: req.headers, body });
        res.writeHead(200, { 'content-type': 'application/json', 'x-backend': 'yes', ...(opts.id ? { 'x-backend-id': opts.id } : {}) });
        res.end(out);
      });
    };
    if (delay > 0) setTimeout(act, delay);
    else act();
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (m, isBinary) => ws.send(isBinary ? m : `echo:${m.toString()}`)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  b.server = server;
  b.port = (server.address() as AddressInfo).port;
  b.url = `http://127.0.0.1:${b.port}`;
  return b;
}
