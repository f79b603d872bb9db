import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { SqliteCatalog } from '../../src/backends/sqlite/catalog.js';
import type { LogRecord } from '../../src/core/types.js';
import { RolloutRuntime } from '../../src/rollout/runtime.js';
import { createRollout } from '../../src/rollout/service.js';
import { entry } from '../helpers/entries.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * A schema version's rollout is created before the version is published (as the API allows),
 * so the controller's pass finds no candidate; the version is published and its events come
 * before the next pass. The shadow looks the candidate up at the batch and compares them all
 * against it. Before: those events were compared with an empty candidate and counted
 * identical (a clean-clone run on NATS + PostgreSQL reported 16 of the 30 failing events).
 */
let catalog: SqliteCatalog | null = null;
afterEach(async () => {
  await catalog?.close();
  catalog = null;
});

const v1 = { type: 'object', properties: { amount: { type: 'number' } } };
const v2 = { type: 'object', properties: { amount: { type: 'number', maximum: 969 } } };
const records = (from: number, n: number): LogRecord[] =>
  Array.from({ length: n }, (_, i) => ({ ...entry('acme', from + i, 1, { idempotencyKey: `k-${from + i}`, properties: JSON.stringify({ amount: (from + i) % 1000 }) }), offset: from + i + 1, attempt: 1 }));

it('rollout.shadow-compares-against-a-schema-version-published-after-the-controllers-last-pass-and-compares-nothing-before-it-exists', async () => {
  catalog = new SqliteCatalog(path.join(tmpDir('sluice-shadow-late-'), 'sluice.db'));
  await catalog.createTenant('acme');
  await catalog.schemas.publish('acme', 'checkout', { schema: v1, owner: 'payments', actor: 'test', expectedVersion: 0, diff: null });
  const created = Date.now() - 60_000;
  const rollout = await createRollout(
    catalog,
    'acme',
    {
      change: { schema: { type: 'checkout', version: 2 } },
      steps: [{ shadow: { sample: 1, duration: '1h' } }, { ramp: { percents: [100], step_duration: '1h' } }],
      guardrails: { dead_letter_rate: 0.5, min_events: 100 },
      auto: false,
    },
    created,
    'test',
  );
  // A clock without sleep: the shadow's duty-cycle pause is not what this test is about.
  const runtime = new RolloutRuntime(catalog, { now: () => Date.now() });
  await runtime.refresh();
  const shadow = runtime.shadowStage([]);
  const ctx = { signal: new AbortController().signal };

  // Version 2 does not exist yet: nothing is compared (not "identical").
  await shadow.run(records(900, 100), ctx);
  await runtime.flush();
  expect(await catalog.rollouts.diff(rollout.id)).toMatchObject({ compared: 0, identical: 0, dead_lettered: 0 });

  // Published after the controller's last pass; its events come before the next one.
  await catalog.schemas.publish('acme', 'checkout', { schema: v2, owner: 'payments', actor: 'test', expectedVersion: 1, forcedReason: 'refunds are another type', diff: null });
  await shadow.run(records(0, 1000), ctx);
  await runtime.flush();
  expect(await catalog.rollouts.diff(rollout.id)).toMatchObject({ compared: 1000, identical: 970, changed: 0, dropped: 0, dead_lettered: 30 });
});
