import type { Scenario } from '../lib/types.js';
export const scenario: Scenario = { id: 's5-bandwidth', title: 's5-bandwidth', run: async () => ({ body: ['not run: not written yet'], commands: [] }) };
