/**
 * This process's event-loop delay, for the adaptive limit: a latency that
 * sluice measures includes the time the response waited for sluice's own
 * event loop (busy, or the process not scheduled on a loaded machine). Read as
 * the mean delay between two reads, from one shared `monitorEventLoopDelay`
 * histogram (10 ms resolution), started when the first adaptive limit asks.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

let histogram: IntervalHistogram | undefined;

/** A reader of the mean event-loop delay, in ms, since its previous call (0 on the first). */
export function loopLagReader(): () => number {
  if (!histogram) {
    histogram = monitorEventLoopDelay({ resolution: 10 });
    histogram.enable();
  }
  const h = histogram;
  let count = h.count;
  let sum = h.count > 0 ? h.mean * h.count : 0;
  return () => {
    const c = h.count;
    const s = c > 0 ? h.mean * c : 0;
    const n = c - count;
    const lag = n > 0 ? (s - sum) / n / 1e6 : 0;
    count = c;
    sum = s;
    return Math.max(0, lag);
  };
}
