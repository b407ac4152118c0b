/** Shared bits of the benches: a backend, an in-process or child sluice, HTTP download helpers. */
import { request, Agent } from 'node:http';
export { startBackend } from '../test/helpers/backend.js';
export { startSluice, simplePolicy } from '../test/helpers/sluice.js';
export { startRedis } from '../test/helpers/redis.js';

export const MiB = 1024 * 1024;

/** Downloads url, counting bytes; resolves with bytes and milliseconds. */
export function download(url: string, headers: Record<string, string> = {}, agent?: Agent): Promise<{ bytes: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(url, { headers, agent: agent ?? false }, (res) => {
      let bytes = 0;
      res.on('data', (d: Buffer) => (bytes += d.length));
      res.on('end', () => resolve({ bytes, ms: performance.now() - t0 }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export function pct(actual: number, expected: number): string {
  const d = ((actual - expected) / expected) * 100;
  return `${d >= 0 ? '+' : ''}${d.toFixed(1)}%`;
}

export function verdict(ok: boolean): string {
  return ok ? 'PASS' : 'FAIL';
}
