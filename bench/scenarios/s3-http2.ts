import type { Scenario } from '../lib/types.js';
export const scenario: Scenario = { id: 's3-http2', title: 's3-http2', run: async () => ({ body: ['not run: not written yet'], commands: [] }) };
