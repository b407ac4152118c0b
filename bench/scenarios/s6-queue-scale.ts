import type { Scenario } from '../lib/types.js';
export const scenario: Scenario = { id: 's6-queue-scale', title: 's6-queue-scale', run: async () => ({ body: ['not run: not written yet'], commands: [] }) };
