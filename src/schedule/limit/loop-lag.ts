/**
 * This process's event-loop delay, for the adaptive limit: a latency that
 * sluice measures includes the time the response waited for sluice's own
 * event loop (busy, or the process not scheduled on a loaded machine). Read as
 * the mean delay between two reads, from one shared `monitorEventLoopDelay`
 * histogram, started when the first adaptive limit asks.
 *
 * The histogram records the whole interval between two of its timer's runs,
 * that is its resolution plus the delay: an idle loop reads about 10.1 ms at a
 * 10 ms resolution. The resolution is taken off, so an idle loop reads ~0.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

/** Resolution of the histogram's timer, ms. */
export const LOOP_LAG_RESOLUTION_MS = 10;

let histogram: IntervalHistogram | undefined;

/** A reader of the mean event-loop delay, in ms, since its previous call (0 on the first). */
export function loopLagReader(): () => number {
  if (!histogram) {
    histogram = monitorEventLoopDelay({ resolution: LOOP_LAG_RESOLUTION_MS });
    histogram.enable();
  }
  const h = histogram;
  let count = h.count;
  let sum = h.count > 0 ? h.mean * h.count : 0;
  return () => {
    const c = h.count;
    const s = c > 0 ? h.mean * c : 0;
    const n = c - count;
    const interval = n > 0 ? (s - sum) / n / 1e6 : LOOP_LAG_RESOLUTION_MS;
    count = c;
    sum = s;
    return Math.max(0, interval - LOOP_LAG_RESOLUTION_MS);
  };
}
