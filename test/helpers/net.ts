import { createServer, connect as netConnect } from 'node:net';
import { request } from 'node:http';
import { spawn } from 'node:child_process';

/** A loopback port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export async function getJson<T = unknown>(url: string): Promise<T> {
  const r = await fetch(url);
  return (await r.json()) as T;
}

/** Polls until fn returns true or the timeout passes. */
export async function waitFor(fn: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Starts an HTTP/1.1 request and aborts it after ms; resolves when aborted. */
export function abortAfter(url: string, ms: number, headers: Record<string, string> = {}): Promise<void> {
  return new Promise((resolve) => {
    const req = request(url, { headers, agent: false });
    req.on('error', () => resolve());
    req.on('response', (res) => res.resume());
    req.end();
    setTimeout(() => {
      req.destroy();
      resolve();
    }, ms);
  });
}

export function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    p.on('error', (err) => resolve({ code: -1, stdout, stderr: String(err) }));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** GETs url and tells how the response ended: complete, incomplete, aborted or error. */
export function responseCompletion(url: string): Promise<string> {
  return new Promise<string>((resolve) => {
    const req = request(url, (res) => {
      res.on('data', () => {});
      res.on('end', () => resolve(res.complete ? 'complete' : 'incomplete'));
      res.on('error', () => resolve('error'));
      res.on('aborted', () => resolve('aborted'));
    });
    req.on('error', () => resolve('error'));
    req.end();
  });
}

/** Sends raw bytes to 127.0.0.1:port and returns everything received (latin1) until the server closes, or `timeoutMs` passes. */
export function rawExchange(port: number, bytes: string | Buffer, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const s = netConnect(port, '127.0.0.1');
    let out = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => (out += d));
    s.on('error', () => resolve(out));
    s.on('close', () => resolve(out));
    s.setTimeout(timeoutMs, () => s.destroy());
    s.write(bytes);
  });
}

/** The status code of a raw HTTP/1.1 response (0 when there is none). */
export const statusOf = (resp: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(resp)?.[1] ?? 0);
