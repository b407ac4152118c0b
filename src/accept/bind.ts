/**
 * Binding a listening server, shared by the cleartext and TLS listeners.
 * A deep accept queue (4096): under overload clients open connections in
 * bursts (queued requests hold theirs), and an overflowing backlog costs them a
 * 1 s SYN retransmit. Resolves with the bound address (port 0: the ephemeral
 * port chosen); rejects with the server's listen error (e.g. EADDRINUSE).
 */
import type { Server } from 'node:net';

export function bind(server: Server, port: number, host: string): Promise<{ host: string; port: number }> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog: 4096 }, () => {
      server.off('error', reject);
      const a = server.address();
      if (a && typeof a === 'object') resolve({ host: a.address, port: a.port });
      else reject(new Error('listener has no address'));
    });
  });
}

/** Stops accepting; existing connections keep going. Resolves when the server has closed. */
export function unbind(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
