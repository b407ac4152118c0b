/** Which OTEL_* settings turn tracing on (the contract: nothing set, nothing exported). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tracesExporterFromEnv } from '../../../src/telemetry/tracing.js';

test('nothing set, or only unrelated OTEL_* variables: tracing off', () => {
  assert.equal(tracesExporterFromEnv({}), undefined);
  assert.equal(tracesExporterFromEnv({ OTEL_SERVICE_NAME: 'x', OTEL_TRACES_SAMPLER: 'always_on' }), undefined);
  assert.equal(tracesExporterFromEnv({ OTEL_TRACES_EXPORTER: '', OTEL_EXPORTER_OTLP_ENDPOINT: '' }), undefined);
});

test('an exporter or an OTLP endpoint turns it on', () => {
  assert.equal(tracesExporterFromEnv({ OTEL_TRACES_EXPORTER: 'otlp' }), 'otlp');
  assert.equal(tracesExporterFromEnv({ OTEL_TRACES_EXPORTER: 'console' }), 'console');
  assert.equal(tracesExporterFromEnv({ OTEL_TRACES_EXPORTER: ' otlp , console ' }), 'otlp,console');
  assert.equal(tracesExporterFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }), 'otlp');
  assert.equal(tracesExporterFromEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces' }), 'otlp');
});

test('none and OTEL_SDK_DISABLED win', () => {
  assert.equal(tracesExporterFromEnv({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }), undefined);
  assert.equal(tracesExporterFromEnv({ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' }), undefined);
});
