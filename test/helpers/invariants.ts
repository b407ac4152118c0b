/**
 * The invariant every request-path test checks when its traffic has stopped:
 * every in-flight and queued count on the proxy's /status is back to zero
 * (each admitted request ended exactly once and gave back its slot), and no
 * request or response buffer is still held.
 */
import assert from 'node:assert/strict';

interface Counts {
  name?: string;
  inFlight?: number;
  queued?: number;
}

interface Status extends Counts {
  /** Bytes held by request and response buffers. */
  bufferedBytes?: number;
  classes?: Counts[];
  upstreams?: Counts[];
}

/** Non-zero counts of a /status answer, e.g. ["inFlight=1", "classes[free].queued=2"]; empty when drained. */
export function leftovers(s: Status): string[] {
  const out: string[] = [];
  const check = (where: string, c: Counts): void => {
    if (c.inFlight) out.push(`${where}inFlight=${c.inFlight}`);
    if (c.queued) out.push(`${where}queued=${c.queued}`);
  };
  check('', s);
  if (s.bufferedBytes) out.push(`bufferedBytes=${s.bufferedBytes}`);
  for (const c of s.classes ?? []) check(`classes[${c.name}].`, c);
  for (const u of s.upstreams ?? []) check(`upstreams[${u.name}].`, u);
  return out;
}

/**
 * Polls `${admin}/status` until every inFlight and queued count (and bufferedBytes) is 0; fails
 * with the counts still held after `timeoutMs`.
 */
export async function assertDrained(admin: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last: string[] = [];
  for (;;) {
    try {
      const r = await fetch(`${admin}/status`);
      last = leftovers((await r.json()) as Status);
      if (last.length === 0) return;
    } catch (err) {
      last = [`/status unreachable: ${(err as Error).message}`];
    }
    if (Date.now() > end) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`proxy not drained after ${timeoutMs} ms: ${last.join(', ')}`);
}
