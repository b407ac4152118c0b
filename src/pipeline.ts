/** The pipeline moved to src/pipeline/ (index.ts, runtime.ts, exchange.ts); this keeps old imports working. */
export * from './pipeline/index.js';
