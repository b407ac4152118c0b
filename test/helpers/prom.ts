/**
 * Prometheus text parsing for tests, with parse-prometheus-text-format.
 * That parser folds histogram series into one label-less object (it follows
 * prom2json, which loses labels of labelled histograms), so histogram families
 * are handed to it untyped: each `_bucket`, `_sum` and `_count` series is then
 * parsed as a plain sample, labels and all. Malformed lines still throw.
 */
import parsePrometheusTextFormat from 'parse-prometheus-text-format';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Scrape {
  samples: Sample[];
  /** Family name → TYPE (counter, gauge, histogram), from the exposition. */
  types: Map<string, string>;
  /** Value of the one sample with this name whose labels include `labels`; undefined when none. */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** All samples with this name whose labels include `labels`. */
  find(name: string, labels?: Record<string, string>): Sample[];
}

export function parseMetrics(text: string): Scrape {
  const types = new Map<string, string>();
  const untyped = text
    .split('\n')
    .filter((line) => {
      const m = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (!m) return true;
      types.set(m[1]!, m[2]!);
      return m[2] !== 'histogram';
    })
    .join('\n');
  const samples: Sample[] = [];
  for (const fam of parsePrometheusTextFormat(untyped)) {
    for (const m of fam.metrics) {
      const v = m.value ?? m.count ?? m.sum;
      if (v === undefined) throw new Error(`sample of ${fam.name} without a value`);
      samples.push({ name: fam.name, labels: m.labels ?? {}, value: Number(v) });
    }
  }
  const find = (name: string, labels: Record<string, string> = {}): Sample[] =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return {
    samples,
    types,
    find,
    value(name, labels) {
      const found = find(name, labels);
      if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
      return found[0]?.value;
    },
  };
}
