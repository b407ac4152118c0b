/**
 * Every metric sluice exports, declared in one list (the Envoy way: a stage's
 * statistics are a table, not calls scattered through the code).
 *
 * Names and units follow the Prometheus naming conventions and the OpenTelemetry
 * Prometheus compatibility rules (issue 16.7): base units (seconds, bytes),
 * the unit as a name suffix (`_seconds`, `_bytes`) and `_total` on counters.
 * The exporter used here turns dots into underscores and adds `_total` but does
 * not add unit suffixes, so the suffix is part of the instrument name:
 * `sluice.queue.wait.seconds` → `sluice_queue_wait_seconds`. The names of 0.1
 * (`LEGACY_INSTRUMENTS`, ms histograms without a unit suffix) are exported too
 * while `telemetry.legacyMetricNames: true`, for one release.
 * docs/metrics.md lists the exported names.
 */

/** Attribute keys used on metrics and spans. */
export const ATTR = {
  class: 'sluice.class',
  outcome: 'sluice.outcome',
  upstream: 'sluice.upstream',
  direction: 'sluice.direction',
  target: 'sluice.target',
  pool: 'sluice.cluster.pool',
  mode: 'sluice.cluster.mode',
} as const;

/** Queue waits are usually short, but a queue timeout can be tens of seconds. */
export const QUEUE_WAIT_BUCKETS_MS: readonly number[] = [0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000];
/** Total latency: from sub-millisecond rejections to long, shaped downloads. */
export const LATENCY_BUCKETS_MS: readonly number[] = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000];
/** The same bounds in seconds (the unit of the exported histograms). */
export const QUEUE_WAIT_BUCKETS_S: readonly number[] = QUEUE_WAIT_BUCKETS_MS.map((b) => b / 1000);
export const LATENCY_BUCKETS_S: readonly number[] = LATENCY_BUCKETS_MS.map((b) => b / 1000);

interface Spec {
  readonly name: string;
  readonly description: string;
  readonly unit: string;
  /** Attribute keys the instrument carries (documentation and tests). */
  readonly attributes: readonly string[];
}
export interface CounterSpec extends Spec {
  readonly kind: 'counter';
}
export interface HistogramSpec extends Spec {
  readonly kind: 'histogram';
  readonly buckets: readonly number[];
}
/** Observed when /metrics is read, from the scheduler's status. */
export interface GaugeSpec extends Spec {
  readonly kind: 'gauge';
}
export type InstrumentSpec = CounterSpec | HistogramSpec | GaugeSpec;

export const INSTRUMENTS = {
  requests: {
    kind: 'counter',
    name: 'sluice.requests',
    unit: '{request}',
    description: 'Finished requests by class and outcome (forwarded, rate_limited, queue_full, shed, queue_timeout, ...).',
    attributes: [ATTR.class, ATTR.outcome],
  },
  queueWait: {
    kind: 'histogram',
    name: 'sluice.queue.wait.seconds',
    unit: 's',
    description: 'Time requests spent queued before a slot was granted (or they were rejected), by class.',
    attributes: [ATTR.class],
    buckets: QUEUE_WAIT_BUCKETS_S,
  },
  duration: {
    kind: 'histogram',
    name: 'sluice.request.duration.seconds',
    unit: 's',
    description: 'Total time from arrival to the end of the response, by class and outcome.',
    attributes: [ATTR.class, ATTR.outcome],
    buckets: LATENCY_BUCKETS_S,
  },
  shapedBytes: {
    kind: 'counter',
    name: 'sluice.shaped.bytes',
    unit: 'By',
    description: 'Bytes passed through the bandwidth shaper, by class and direction (download, upload).',
    attributes: [ATTR.class, ATTR.direction],
  },
  classQueued: {
    kind: 'gauge',
    name: 'sluice.class.queued',
    unit: '{request}',
    description: 'Requests waiting in the queues of a class.',
    attributes: [ATTR.class],
  },
  classInFlight: {
    kind: 'gauge',
    name: 'sluice.class.in_flight',
    unit: '{request}',
    description: 'Requests of a class being forwarded now.',
    attributes: [ATTR.class],
  },
  upstreamQueued: {
    kind: 'gauge',
    name: 'sluice.upstream.queued',
    unit: '{request}',
    description: 'Requests waiting for a slot of an upstream.',
    attributes: [ATTR.upstream],
  },
  upstreamInFlight: {
    kind: 'gauge',
    name: 'sluice.upstream.in_flight',
    unit: '{request}',
    description: 'Requests in flight to an upstream.',
    attributes: [ATTR.upstream],
  },
  upstreamMaxConcurrent: {
    kind: 'gauge',
    name: 'sluice.upstream.max_concurrent',
    unit: '{request}',
    description: 'Concurrency limit in force for an upstream: maxConcurrent, the adaptive limit (maxConcurrent: auto) or a cluster share, whichever is lowest (absent when unlimited).',
    attributes: [ATTR.upstream],
  },
  upstreamTargetHealthy: {
    kind: 'gauge',
    name: 'sluice.upstream.target.healthy',
    unit: '1',
    description: 'Target in rotation: 1 when it passes its active health check and is not ejected by outlier detection, else 0.',
    attributes: [ATTR.upstream, ATTR.target],
  },
  clusterShare: {
    kind: 'gauge',
    name: 'sluice.cluster.share',
    unit: '{request}',
    description: "This instance's share of a cluster-wide cap (pool: global, upstream:NAME, reserve:UPSTREAM:CLASS, class:NAME), with the mode (leased, fallback, joining).",
    attributes: [ATTR.pool, ATTR.mode],
  },
  clusterCap: {
    kind: 'gauge',
    name: 'sluice.cluster.cap',
    unit: '{request}',
    description: 'The cluster-wide cap of a pool.',
    attributes: [ATTR.pool],
  },
  clusterInstances: {
    kind: 'gauge',
    name: 'sluice.cluster.instances',
    unit: '{instance}',
    description: 'Members holding a lease on a pool at the last renewal.',
    attributes: [ATTR.pool],
  },
  clusterFallback: {
    kind: 'gauge',
    name: 'sluice.cluster.fallback',
    unit: '1',
    description: '1 while serving on static fallback shares (lease store unreachable, slow or refusing), else 0.',
    attributes: [],
  },
  clusterRenewErrors: {
    kind: 'counter',
    name: 'sluice.cluster.renew.errors',
    unit: '{renewal}',
    description: 'Lease renewals that failed (store unreachable, too slow, or caps refused).',
    attributes: [],
  },
  clusterShareWait: {
    kind: 'histogram',
    name: 'sluice.cluster.share.wait.seconds',
    unit: 's',
    description: "How long this instance's demand in a pool exceeded its share while the share was below the cluster's cap (time for a share to grow).",
    attributes: [ATTR.pool],
    buckets: QUEUE_WAIT_BUCKETS_S,
  },
} as const satisfies Record<string, InstrumentSpec>;

export type InstrumentName = keyof typeof INSTRUMENTS;

/**
 * The 0.1 names, exported as well while `telemetry.legacyMetricNames: true`
 * (one release; see changes/limits.md for the migration).
 */
export const LEGACY_INSTRUMENTS = {
  queueWait: { ...INSTRUMENTS.queueWait, name: 'sluice.queue.wait', unit: 'ms', buckets: QUEUE_WAIT_BUCKETS_MS },
  duration: { ...INSTRUMENTS.duration, name: 'sluice.request.duration', unit: 'ms', buckets: LATENCY_BUCKETS_MS },
  shapedBytes: { ...INSTRUMENTS.shapedBytes, name: 'sluice.shaped' },
} as const satisfies Record<string, InstrumentSpec>;
