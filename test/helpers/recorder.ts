/**
 * A backend that records every request it executes (method, target, headers, body)
 * and every raw byte it receives per connection, so framing tests can see exactly
 * what the proxy put on the wire. `?delay=MS` delays the answer.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface Recorded {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
  connection: number;
}

export interface Recorder {
  url: string;
  port: number;
  server: Server;
  requests: Recorded[];
  /** Raw bytes received, one string (latin1) per upstream connection, in order of arrival. */
  wire: string[];
  close(): Promise<void>;
}

export async function startRecorder(): Promise<Recorder> {
  const sockets = new Set<Socket>();
  const r: Recorder = { url: '', port: 0, server: undefined as unknown as Server, requests: [], wire: [], close: async () => {} };
  let connections = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    const id = (req.socket as Socket & { recId?: number }).recId ?? -1;
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('latin1');
      r.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body, connection: id });
      const out = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyLength: body.length });
      const delay = Number(/[?&]delay=(\d+)/.exec(req.url ?? '')?.[1] ?? 0);
      const answer = (): void => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(out);
      };
      if (delay > 0) setTimeout(answer, delay);
      else answer();
    });
  });
  server.on('connection', (s: Socket & { recId?: number }) => {
    s.recId = connections++;
    r.wire.push('');
    const i = s.recId;
    sockets.add(s);
    s.on('data', (d: Buffer) => (r.wire[i] += d.toString('latin1')));
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  r.server = server;
  r.port = (server.address() as AddressInfo).port;
  r.url = `http://127.0.0.1:${r.port}`;
  r.close = () =>
    new Promise<void>((ok) => {
      for (const s of sockets) s.destroy();
      server.close(() => ok());
    });
  return r;
}

