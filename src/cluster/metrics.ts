/** The cluster's series at /metrics (declared in src/telemetry/instruments.ts). */
import type { Attributes } from '@opentelemetry/api';
import type { Metrics } from '../telemetry/metrics.js';
import { ATTR, INSTRUMENTS } from '../telemetry/instruments.js';
import type { ClusterStatus } from './lease-client.js';

/**
 * Registers the gauges (read from `status` at collection; nothing when it
 * returns undefined) and returns the share-wait recorder for the lease client.
 */
export function observeCluster(metrics: Metrics, status: () => ClusterStatus | undefined): (poolId: string, ms: number) => void {
  const meter = metrics.meter;
  const I = INSTRUMENTS;
  const gauge = (s: { name: string; description: string; unit: string }) => meter.createObservableGauge(s.name, { description: s.description, unit: s.unit });
  const share = gauge(I.clusterShare);
  const cap = gauge(I.clusterCap);
  const instances = gauge(I.clusterInstances);
  const fallback = gauge(I.clusterFallback);
  const errors = meter.createObservableCounter(I.clusterRenewErrors.name, { description: I.clusterRenewErrors.description, unit: I.clusterRenewErrors.unit });
  meter.addBatchObservableCallback(
    (r) => {
      const s = status();
      if (!s) return;
      r.observe(fallback, s.mode === 'fallback' ? 1 : 0);
      r.observe(errors, s.renewErrors);
      for (const p of s.pools) {
        r.observe(share, p.share, { [ATTR.pool]: p.id, [ATTR.mode]: s.mode });
        r.observe(cap, p.clusterCap, { [ATTR.pool]: p.id });
        r.observe(instances, p.instances, { [ATTR.pool]: p.id });
      }
    },
    [share, cap, instances, fallback, errors],
  );
  const wait = meter.createHistogram(I.clusterShareWait.name, {
    description: I.clusterShareWait.description,
    unit: I.clusterShareWait.unit,
    advice: { explicitBucketBoundaries: [...I.clusterShareWait.buckets] },
  });
  const attrs = new Map<string, Attributes>();
  return (poolId, ms) => {
    let a = attrs.get(poolId);
    if (!a) attrs.set(poolId, (a = Object.freeze({ [ATTR.pool]: poolId })));
    wait.record(ms / 1000, a);
  };
}
