/** Small helpers of the gateway tests (balancing, stickiness, health checks, access). */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { startBackend, type Backend } from './backend.js';
import { getJson, waitFor } from './net.js';
import type { RunningSluice } from './sluice.js';

export interface Status {
  inFlight: number;
  queued: number;
  classes: { name: string; served: number; inFlight: number; queued: number }[];
  upstreams: {
    name: string;
    inFlight: number;
    targets: { url: string; healthy: boolean; ejected: boolean; active: number; check?: { runs: number; lastStatus: number; lastError: string } }[];
  }[];
}

/** n backends whose answers say which one served (x-backend-id: b0, b1, ...). */
export function startBackends(n: number, delayMs = 0): Promise<Backend[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => startBackend({ id: `b${i}`, delayMs })));
}

export async function closeAll(bs: Backend[]): Promise<void> {
  await Promise.all(bs.map((b) => b.close()));
}

/** GET (body read); returns status, headers, body text. */
export async function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: Headers; body: string }> {
  const r = await fetch(url, { method, headers });
  const body = await r.text();
  return { status: r.status, headers: r.headers, body };
}

/** The name=value part of the Set-Cookie named `name`, if any. */
export function setCookie(h: Headers, name: string): string | undefined {
  return h.getSetCookie().map((c) => c.split(';')[0]!).find((c) => c.startsWith(`${name}=`));
}

/** Every in-flight and queued count of the proxy back at zero. */
export async function assertIdle(s: RunningSluice): Promise<void> {
  await waitFor(async () => {
    const st = await getJson<Status>(`${s.admin}/status`);
    return st.inFlight === 0 && st.queued === 0 && st.upstreams.every((u) => u.inFlight === 0 && u.targets.every((t) => t.active === 0));
  }, 5000, 'in-flight and queued counts back at zero');
}

export async function reload(s: RunningSluice, yaml: string): Promise<void> {
  await writeFile(s.configFile, yaml);
  const r = await fetch(`${s.admin}/reload`, { method: 'POST' });
  const body = await r.text();
  assert.equal(r.status, 200, body);
}

export function status(s: RunningSluice): Promise<Status> {
  return getJson<Status>(`${s.admin}/status`);
}
