/**
 * A real backend with a concurrency knee: a request's latency is fixed when it
 * arrives, from the requests already in progress n (itself included): `baseMs`
 * while n <= knee, then baseMs·(n/knee)² (contention: latency climbs steeply
 * and throughput falls past the knee). `knee` can be changed while running
 * (capacity halves when it halves). Records its in-flight count every 10 ms.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface KneeBackend {
  url: string;
  knee: number;
  inFlight: number;
  served: number;
  /** In-flight counts sampled every 10 ms since the last `resetSamples`. */
  samples: number[];
  resetSamples(): void;
  close(): Promise<void>;
}

export async function startKneeBackend(knee: number, baseMs: number): Promise<KneeBackend> {
  const sockets = new Set<Socket>();
  const b: KneeBackend = {
    url: '',
    knee,
    inFlight: 0,
    served: 0,
    samples: [],
    resetSamples() {
      b.samples = [];
    },
    close: () =>
      new Promise<void>((r) => {
        clearInterval(sampler);
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
  const server: Server = createServer((req, res) => {
    b.inFlight++;
    const n = b.inFlight;
    const ms = n <= b.knee ? baseMs : baseMs * (n / b.knee) ** 2;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      b.inFlight--;
    };
    res.on('close', finish);
    req.resume();
    setTimeout(() => {
      finish();
      b.served++;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
      res.end('ok');
    }, ms);
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const sampler = setInterval(() => b.samples.push(b.inFlight), 10);
  sampler.unref();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  b.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return b;
}
