import { expect, it } from 'vitest';
import { applyGroupChange, MAX_GROUP_HISTORY, type GroupState } from '../../src/core/dlq-lifecycle.js';

it('dlq.a-group-keeps-its-newest-changes-only', () => {
  // Each change rewrites the group whole: 926 notes of 2,000 characters made it 1.95 MB and
  // every change slower, on the HTTP thread. The audit log keeps every change.
  let g: GroupState = { signature: 'sig', status: 'open', owner: null, history: [] };
  for (let i = 0; i < 250; i++) g = applyGroupChange(g, { note: `note ${i} ${'x'.repeat(2000)}` }, 'key_1', 1_000 + i);
  expect(g.history).toHaveLength(MAX_GROUP_HISTORY);
  expect(g.history.at(-1)).toMatchObject({ at: 1_249, note: expect.stringMatching(/^note 249 /) });
  expect(g.history[0]).toMatchObject({ at: 1_000 + 250 - MAX_GROUP_HISTORY });
});
