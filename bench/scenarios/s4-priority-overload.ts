import type { Scenario } from '../lib/types.js';
export const scenario: Scenario = { id: 's4-priority-overload', title: 's4-priority-overload', run: async () => ({ body: ['not run: not written yet'], commands: [] }) };
