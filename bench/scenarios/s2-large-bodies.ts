import type { Scenario } from '../lib/types.js';
export const scenario: Scenario = { id: 's2-large-bodies', title: 's2-large-bodies', run: async () => ({ body: ['not run: not written yet'], commands: [] }) };
