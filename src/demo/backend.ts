/**
 * The demo's fragile backend: comfortable with `slots` requests at once taking
 * `serviceMs` each; past that every request slows down the others, as a real
 * overloaded database-backed service does. It counts its own peak concurrency.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';

export interface FragileBackend {
  url: string;
  port: number;
  maxInFlight: number;
  close(): Promise<void>;
}

export async function startFragileBackend(slots: number, serviceMs: number): Promise<FragileBackend> {
  let inFlight = 0;
  const state = { maxInFlight: 0 };
  const server: Server = createServer((req, res) => {
    inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, inFlight);
    // Past its slots the backend thrashes: service time grows with the square of the overload.
    const overload = Math.max(1, inFlight / slots);
    const t = serviceMs * overload * overload;
    req.resume();
    setTimeout(() => {
      inFlight--;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 3 });
      res.end('ok\n');
    }, t);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get maxInFlight() {
      return state.maxInFlight;
    },
    set maxInFlight(v: number) {
      state.maxInFlight = v;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Runs the backend in its own process (the demo does, so load generation cannot slow it). */
export async function main(): Promise<void> {
  const slots = Number(process.argv[2] ?? 8);
  const serviceMs = Number(process.argv[3] ?? 20);
  const b = await startFragileBackend(slots, serviceMs);
  process.stdout.write(`${b.url}\n`);
  // The parent asks for the peak concurrency on stdin, then this process exits with it.
  process.stdin.setEncoding('utf8').on('data', (d: string) => {
    if (d.includes('peak')) process.stdout.write(`peak ${b.maxInFlight}\n`);
    if (d.includes('reset')) b.maxInFlight = 0;
  });
  process.stdin.on('end', () => process.exit(0));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
