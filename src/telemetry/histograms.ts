/**
 * Explicit-bucket histograms recorded without the metrics SDK's per-record
 * attribute hashing (`hashAttributes`: Object.keys + sort + JSON.stringify on
 * every `Histogram.record`), exported through the same reader as a
 * `MetricProducer`, so /metrics reads exactly as before.
 *
 * The caller keeps one `HistogramCell` per attribute set (per class, per class
 * and outcome) and records into it directly: a bucket search and four number
 * updates. Buckets are upper-inclusive (a value equal to a boundary counts in
 * that bucket), min/max/sum/count as the SDK's HistogramAggregator keeps them.
 * Cumulative temporality, start time = when the cell was created.
 */
import { ValueType, type Attributes, type HrTime } from '@opentelemetry/api';
import {
  AggregationTemporality,
  DataPointType,
  type CollectionResult,
  type HistogramMetricData,
  type MetricProducer,
} from '@opentelemetry/sdk-metrics';
import type { HistogramSpec } from './instruments.js';

/** One attribute set of one histogram. */
export class HistogramCell {
  readonly counts: number[];
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;
  readonly startTime: HrTime = hrNow();

  constructor(
    readonly attributes: Attributes,
    private readonly boundaries: readonly number[],
  ) {
    this.counts = new Array<number>(boundaries.length + 1).fill(0);
  }

  record(v: number): void {
    if (Number.isNaN(v)) return;
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    // Binary search for the first boundary >= v (the SDK's binarySearchUB).
    const b = this.boundaries;
    let lo = 0;
    let hi = b.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (b[mid]! < v) lo = mid + 1;
      else hi = mid;
    }
    this.counts[lo]!++;
  }
}

/** One histogram instrument: its cells, and their export as SDK metric data. */
export class FastHistogram {
  private readonly cells: HistogramCell[] = [];
  constructor(readonly spec: HistogramSpec) {}

  /** A new cell for an attribute set; the caller caches it (one per set). */
  cell(attributes: Attributes): HistogramCell {
    const c = new HistogramCell(attributes, this.spec.buckets);
    this.cells.push(c);
    return c;
  }

  toMetricData(endTime: HrTime): HistogramMetricData {
    return {
      descriptor: {
        name: this.spec.name,
        description: this.spec.description,
        unit: this.spec.unit,
        valueType: ValueType.DOUBLE,
      },
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPointType: DataPointType.HISTOGRAM,
      dataPoints: this.cells
        .filter((c) => c.count > 0)
        .map((c) => ({
          attributes: c.attributes,
          startTime: c.startTime,
          endTime,
          value: {
            min: c.min,
            max: c.max,
            sum: c.sum,
            count: c.count,
            buckets: { boundaries: [...this.spec.buckets], counts: c.counts.slice() },
          },
        })),
    };
  }
}

/** Exposes histograms to a MetricReader (`metricProducers` option). */
export class HistogramProducer implements MetricProducer {
  constructor(private readonly histograms: readonly FastHistogram[]) {}

  async collect(): Promise<CollectionResult> {
    const now = hrNow();
    return {
      resourceMetrics: {
        resource: undefined as never,
        scopeMetrics: [{ scope: { name: 'sluice' }, metrics: this.histograms.map((h) => h.toMetricData(now)) }],
      },
      errors: [],
    };
  }
}

function hrNow(): HrTime {
  const ms = performance.timeOrigin + performance.now();
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}
