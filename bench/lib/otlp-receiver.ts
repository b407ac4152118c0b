// A local OTLP/HTTP sink for the "sluice with tracing" peer: accepts any POST,
// answers 200 with an empty body, counts requests and bytes.
import http from 'node:http';

export interface Receiver {
  port: number;
  requests: number;
  bytes: number;
  close: () => Promise<void>;
}

export async function startOtlpReceiver(): Promise<Receiver> {
  const r: Receiver = { port: 0, requests: 0, bytes: 0, close: async () => {} };
  const server = http.createServer((req, res) => {
    req.on('data', (c: Buffer) => (r.bytes += c.length));
    req.on('end', () => {
      r.requests++;
      const ct = String(req.headers['content-type'] ?? '');
      res.writeHead(200, { 'content-type': ct.includes('json') ? 'application/json' : 'application/x-protobuf' });
      res.end(ct.includes('json') ? '{}' : undefined);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const a = server.address();
  r.port = typeof a === 'object' && a ? a.port : 0;
  r.close = () => new Promise((resolve) => server.close(() => resolve()));
  return r;
}
