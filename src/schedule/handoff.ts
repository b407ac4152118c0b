/**
 * The hand-off of a slot from a finished exchange to the next waiter.
 *
 * A request's permit is given back as soon as the upstream has sent the whole
 * response (its response body ended), not when the client has received it:
 * from then on the upstream is no longer working on the request, and the next
 * waiter starts in the same turn of the event loop (HAProxy frees a server
 * slot the same way). Writing the response out to a slow client, ending
 * telemetry and logging no longer hold the upstream's slot. Whatever ends the
 * exchange first (response end, error, timeout, client abort) releases the
 * permit; later calls are no-ops (Permit.release is idempotent).
 */
import type { RequestContext } from '../accept/context.js';
import type { Permit } from './scheduler.js';
import { sampleOf } from './limit/feedback.js';

const held = new WeakMap<RequestContext, Permit>();

/** Remembers the permit a forwarded request holds. */
export function holdPermit(ctx: RequestContext, permit: Permit): void {
  held.set(ctx, permit);
}

/**
 * Gives the request's permit back (with what the exchange says about the
 * upstream's load, for an adaptive limit). Safe to call more than once.
 * Also the forward stage's `upstreamDone` hook.
 */
export function releasePermit(ctx: RequestContext): void {
  const p = held.get(ctx);
  if (!p) return;
  held.delete(ctx);
  p.release(p.up.adaptive ? sampleOf(ctx) : undefined);
}
