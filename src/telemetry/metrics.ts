/**
 * Metrics through the OpenTelemetry metrics SDK, read on demand as Prometheus
 * text by the admin listener's GET /metrics. Always on: a finished request
 * costs a map increment and two histogram records into cached cells (no
 * attribute hashing: see histograms.ts, about 0.2 µs instead of 5 µs per request);
 * gauges are observed from the scheduler's status only when /metrics is read.
 *
 * The Prometheus exporter is used as a pull MetricReader without its own HTTP
 * server (`preventServerStart`); its serializer renders what `collect()` returns.
 */
import type { Attributes, Counter, Meter } from '@opentelemetry/api';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import type { RequestContext, Outcome } from '../accept/context.js';
import type { SchedulerStatus } from '../schedule/scheduler.js';
import { ATTR, INSTRUMENTS, LEGACY_INSTRUMENTS } from './instruments.js';
import { FastHistogram, HistogramProducer, type HistogramCell } from './histograms.js';

/** Direction of shaped bytes: response bodies (download) or request bodies (upload). */
export type ShapedDirection = 'download' | 'upload';

export interface MetricsOptions {
  /** `service.name` of the exported target_info. Default: OTEL_SERVICE_NAME, else `sluice`. */
  serviceName?: string;
  /** Also export the 0.1 names (ms histograms, `sluice_shaped_total`). Default false. */
  legacyNames?: boolean;
}

/** Label value for requests that never got a class (no route). */
const NO_CLASS = '';

export class Metrics {
  private readonly provider: MeterProvider;
  private readonly reader: PrometheusExporter;
  private readonly serializer = new PrometheusSerializer(undefined, false, undefined, false, true);
  /**
   * Finished requests: class → outcome → count. Counted here and observed at
   * collection (an ObservableCounter) so that the most frequent record costs
   * two map lookups instead of the SDK's attribute hashing.
   */
  private readonly counts = new Map<string, Map<Outcome, number>>();
  /** Recorded into cached per-attribute-set cells, exported by a MetricProducer (see histograms.ts). */
  /**
   * The histograms in seconds, and while legacyNames is on the 0.1 ones in ms;
   * `perMs` converts a millisecond value to the histogram's unit.
   */
  private readonly histograms: { queueWait: FastHistogram; duration: FastHistogram; perMs: number }[];
  /** Cells of each class (and outcome), one per entry of `histograms`. */
  private readonly queueWaitCells = new Map<string, HistogramCell[]>();
  private readonly durationCells = new Map<string, Map<Outcome, HistogramCell[]>>();
  private readonly shaped: Counter;
  /** The 0.1 shaped-bytes counter, while legacyNames is on. */
  private readonly legacyShaped: Counter | undefined;
  /** class name → outcome → frozen attributes; the SDK hashes attributes per record, we avoid allocating them too. */
  private readonly outcomeAttrs = new Map<string, Map<Outcome, Attributes>>();
  private readonly classAttrs = new Map<string, Attributes>();
  private readonly shapedAttrs = new Map<string, Attributes>();
  private closed = false;

  constructor(opts: MetricsOptions = {}) {
    this.histograms = [{ queueWait: new FastHistogram(INSTRUMENTS.queueWait), duration: new FastHistogram(INSTRUMENTS.duration), perMs: 1 / 1000 }];
    if (opts.legacyNames) {
      const L = LEGACY_INSTRUMENTS;
      this.histograms.push({
        queueWait: new FastHistogram({ ...L.queueWait, description: `${L.queueWait.description} Deprecated: use sluice_queue_wait_seconds.` }),
        duration: new FastHistogram({ ...L.duration, description: `${L.duration.description} Deprecated: use sluice_request_duration_seconds.` }),
        perMs: 1,
      });
    }
    const producer = new HistogramProducer(this.histograms.flatMap((h) => [h.queueWait, h.duration]));
    this.reader = new PrometheusExporter({ preventServerStart: true, metricProducers: [producer] });
    this.provider = new MeterProvider({
      resource: resourceFromAttributes({ 'service.name': opts.serviceName ?? (process.env.OTEL_SERVICE_NAME || 'sluice') }),
      readers: [this.reader],
    });
    const meter = this.provider.getMeter('sluice');
    const I = INSTRUMENTS;
    const requests = meter.createObservableCounter(I.requests.name, { description: I.requests.description, unit: I.requests.unit });
    requests.addCallback((r) => {
      for (const [name, byOutcome] of this.counts) for (const [outcome, n] of byOutcome) r.observe(n, this.attrsOfOutcome(name, outcome));
    });
    this.shaped = meter.createCounter(I.shapedBytes.name, { description: I.shapedBytes.description, unit: I.shapedBytes.unit });
    if (opts.legacyNames) {
      this.legacyShaped = meter.createCounter(LEGACY_INSTRUMENTS.shapedBytes.name, {
        description: `${LEGACY_INSTRUMENTS.shapedBytes.description} Deprecated: use sluice_shaped_bytes_total.`,
        unit: LEGACY_INSTRUMENTS.shapedBytes.unit,
      });
    }
  }

  /** The meter instruments of other stages are created on (cluster shares). */
  get meter(): Meter {
    return this.provider.getMeter('sluice');
  }

  /** Registers the gauges; `status` is called once per collection. */
  observe(status: () => SchedulerStatus): void {
    const meter = this.provider.getMeter('sluice');
    const I = INSTRUMENTS;
    const gauge = (s: { name: string; description: string; unit: string }) =>
      meter.createObservableGauge(s.name, { description: s.description, unit: s.unit });
    const classQueued = gauge(I.classQueued);
    const classInFlight = gauge(I.classInFlight);
    const upQueued = gauge(I.upstreamQueued);
    const upInFlight = gauge(I.upstreamInFlight);
    const upMax = gauge(I.upstreamMaxConcurrent);
    meter.addBatchObservableCallback(
      (r) => {
        const s = status();
        for (const c of s.classes) {
          const a = this.attrsOfClass(c.name);
          r.observe(classQueued, c.queued, a);
          r.observe(classInFlight, c.inFlight, a);
        }
        for (const u of s.upstreams) {
          const a = { [ATTR.upstream]: u.name };
          r.observe(upQueued, u.queued, a);
          r.observe(upInFlight, u.inFlight, a);
          if (u.maxConcurrent !== null) r.observe(upMax, u.maxConcurrent, a);
        }
      },
      [classQueued, classInFlight, upQueued, upInFlight, upMax],
    );
  }

  /** Registers the per-target health gauge; `targets` is called once per collection. */
  observeTargets(targets: () => readonly { upstream: string; target: string; healthy: boolean }[]): void {
    const spec = INSTRUMENTS.upstreamTargetHealthy;
    const g = this.provider.getMeter('sluice').createObservableGauge(spec.name, { description: spec.description, unit: spec.unit });
    g.addCallback((r) => {
      for (const t of targets()) r.observe(t.healthy ? 1 : 0, { [ATTR.upstream]: t.upstream, [ATTR.target]: t.target });
    });
  }

  /** One finished request. `now` is on the same clock as the context's timestamps. */
  record(ctx: RequestContext, outcome: Outcome, now: number): void {
    const name = ctx.klass ? ctx.klass.name : NO_CLASS;
    let byOutcome = this.counts.get(name);
    if (!byOutcome) this.counts.set(name, (byOutcome = new Map()));
    byOutcome.set(outcome, (byOutcome.get(outcome) ?? 0) + 1);
    if (ctx.queuedAt > 0) {
      let q = this.queueWaitCells.get(name);
      if (!q) {
        const attrs = this.attrsOfClass(name);
        this.queueWaitCells.set(name, (q = this.histograms.map((h) => h.queueWait.cell(attrs))));
      }
      const waitMs = (ctx.dequeuedAt > 0 ? ctx.dequeuedAt : now) - ctx.queuedAt;
      for (let i = 0; i < q.length; i++) q[i]!.record(waitMs * this.histograms[i]!.perMs);
    }
    let byOutcome2 = this.durationCells.get(name);
    if (!byOutcome2) this.durationCells.set(name, (byOutcome2 = new Map()));
    let d = byOutcome2.get(outcome);
    if (!d) {
      const attrs = this.attrsOfOutcome(name, outcome);
      byOutcome2.set(outcome, (d = this.histograms.map((h) => h.duration.cell(attrs))));
    }
    const totalMs = now - ctx.start;
    for (let i = 0; i < d.length; i++) d[i]!.record(totalMs * this.histograms[i]!.perMs);
  }

  /** Bytes that went through the bandwidth shaper of a class. */
  recordShapedBytes(className: string, direction: ShapedDirection, n: number): void {
    if (n <= 0) return;
    const key = direction === 'download' ? `d${className}` : `u${className}`;
    let a = this.shapedAttrs.get(key);
    if (!a) this.shapedAttrs.set(key, (a = Object.freeze({ [ATTR.class]: className, [ATTR.direction]: direction })));
    this.shaped.add(n, a);
    this.legacyShaped?.add(n, a);
  }

  /** Prometheus text exposition (format 0.0.4) of everything recorded so far. */
  async text(): Promise<string> {
    const { resourceMetrics, errors } = await this.reader.collect();
    if (errors.length > 0) throw new AggregateError(errors, 'metrics collection failed');
    return this.serializer.serialize(resourceMetrics);
  }

  /** Safe to call more than once. */
  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const i = active.indexOf(this);
    if (i !== -1) active.splice(i, 1);
    await this.provider.shutdown();
  }

  /** Makes this instance the target of the module-level `recordShapedBytes`. */
  activate(): void {
    if (!this.closed && !active.includes(this)) active.push(this);
  }

  private attrsOfClass(name: string): Attributes {
    let a = this.classAttrs.get(name);
    if (!a) this.classAttrs.set(name, (a = Object.freeze({ [ATTR.class]: name })));
    return a;
  }

  private attrsOfOutcome(name: string, outcome: Outcome): Attributes {
    let byOutcome = this.outcomeAttrs.get(name);
    if (!byOutcome) this.outcomeAttrs.set(name, (byOutcome = new Map()));
    let a = byOutcome.get(outcome);
    if (!a) byOutcome.set(outcome, (a = Object.freeze({ [ATTR.class]: name, [ATTR.outcome]: outcome })));
    return a;
  }
}

/** Started Metrics instances, newest last (normally exactly one per process). */
const active: Metrics[] = [];

/**
 * Counts bytes passed through a class's bandwidth shaper, on the newest running
 * sluice instance. For the shape stage: call it per chunk or per batch of chunks.
 * A no-op when no instance is running.
 */
export function recordShapedBytes(className: string, direction: ShapedDirection, n: number): void {
  active[active.length - 1]?.recordShapedBytes(className, direction, n);
}
