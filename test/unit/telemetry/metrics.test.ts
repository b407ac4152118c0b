/** Metrics in-process: shaped bytes, gauges from a status source, Prometheus text. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics, recordShapedBytes } from '../../../src/telemetry/metrics.js';
import { INSTRUMENTS } from '../../../src/telemetry/instruments.js';
import type { SchedulerStatus } from '../../../src/schedule/scheduler.js';
import { parseMetrics } from '../../helpers/prom.js';

const rejected = { queue_full: 0, shed: 0, queue_timeout: 0, rate_limited: 0, shutting_down: 0 };

test('recordShapedBytes counts bytes by class and direction on the active instance', async () => {
  const m = new Metrics({ serviceName: 'unit' });
  m.activate();
  try {
    recordShapedBytes('premium', 'download', 1000);
    recordShapedBytes('premium', 'download', 24);
    recordShapedBytes('premium', 'upload', 7);
    recordShapedBytes('free', 'download', 0); // nothing to count
    m.recordShapedBytes('free', 'upload', 5);
    const s = parseMetrics(await m.text());
    assert.equal(s.types.get('sluice_shaped_bytes_total'), 'counter');
    assert.equal(s.value('sluice_shaped_bytes_total', { sluice_class: 'premium', sluice_direction: 'download' }), 1024);
    assert.equal(s.value('sluice_shaped_bytes_total', { sluice_class: 'premium', sluice_direction: 'upload' }), 7);
    assert.equal(s.value('sluice_shaped_bytes_total', { sluice_class: 'free', sluice_direction: 'upload' }), 5);
    assert.equal(s.value('sluice_shaped_bytes_total', { sluice_class: 'free', sluice_direction: 'download' }), undefined);
  } finally {
    await m.shutdown();
  }
  // After shutdown the module-level function has no target and does nothing.
  recordShapedBytes('premium', 'download', 1);
});

test('gauges read the status source once per scrape', async () => {
  const m = new Metrics();
  let calls = 0;
  let queued = 3;
  const status = (): SchedulerStatus => {
    calls++;
    return {
      classes: [{ name: 'gold', priority: 0, weight: 1, inFlight: 2, queued, served: 9, rejected }],
      upstreams: [
        { name: 'a', inFlight: 2, maxConcurrent: 4, queued },
        { name: 'b', inFlight: 0, maxConcurrent: null, queued: 0 },
      ],
      inFlight: 2,
      queued,
    };
  };
  m.observe(status);
  try {
    let s = parseMetrics(await m.text());
    assert.equal(calls, 1);
    assert.equal(s.value('sluice_class_queued', { sluice_class: 'gold' }), 3);
    assert.equal(s.value('sluice_class_in_flight', { sluice_class: 'gold' }), 2);
    assert.equal(s.value('sluice_upstream_in_flight', { sluice_upstream: 'a' }), 2);
    assert.equal(s.value('sluice_upstream_max_concurrent', { sluice_upstream: 'a' }), 4);
    assert.equal(s.value('sluice_upstream_max_concurrent', { sluice_upstream: 'b' }), undefined, 'unlimited: absent');
    queued = 0;
    s = parseMetrics(await m.text());
    assert.equal(calls, 2);
    assert.equal(s.value('sluice_class_queued', { sluice_class: 'gold' }), 0);
  } finally {
    await m.shutdown();
  }
});

test('every declared instrument has a unique name, a unit and a description', () => {
  const names = Object.values(INSTRUMENTS).map((i) => i.name);
  assert.equal(new Set(names).size, names.length);
  for (const i of Object.values(INSTRUMENTS)) {
    assert.ok(i.description.length > 10, i.name);
    assert.ok(i.unit.length > 0, i.name);
    if (i.kind === 'histogram') {
      for (let k = 1; k < i.buckets.length; k++) assert.ok(i.buckets[k]! > i.buckets[k - 1]!, `${i.name} buckets ascend`);
    }
  }
});
