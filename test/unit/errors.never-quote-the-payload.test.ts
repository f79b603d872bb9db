import { afterEach, describe, expect, it } from 'vitest';
import { classifyCommitError, DuckdbStore } from '../../src/backends/duckdb/store.js';
import { redactJsonError, redactValues } from '../../src/core/redact.js';
import { parseView } from '../../src/core/query.js';
import type { LogRecord } from '../../src/core/types.js';
import { startPipeline, type Pipeline } from '../helpers/pipeline.js';
import { tmpDir } from '../helpers/tmp.js';

let p: Pipeline | null = null;
afterEach(async () => {
  await p?.close();
  p = null;
});

const SECRET = 'hunter2-card-4111111111111111';

describe('errors name the key and the field, never the payload', () => {
  it('errors.engine-messages-lose-their-quoted-values', () => {
    expect(redactValues(`Conversion Error: Could not convert string '${SECRET}' to INT64`)).toBe("Conversion Error: Could not convert string '…' to INT64");
    expect(redactValues(`invalid input syntax for type integer: "${SECRET}"`)).toBe('invalid input syntax for type integer: "…"');
    expect(redactValues('Binder Error: column "amount" not found')).toBe('Binder Error: column "amount" not found');
    expect(redactJsonError(`Unexpected token 'h', "{"card": ${SECRET}}" is not valid JSON`)).not.toContain(SECRET);
  });

  it('errors.a-malformed-body-is-refused-without-echoing-it', async () => {
    p = await startPipeline({}, { workers: false });
    const res = await p.app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${p.tenant.writeKey}` }, payload: `{"type": "pay", "properties": {"card": ${SECRET}}}` });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'SLUICE_ERR_INVALID_JSON', field: 'body' });
    expect(res.body).not.toContain('hunter2');
  });

  it('errors.a-row-the-store-refuses-fails-without-its-contents', async () => {
    const store = new DuckdbStore({ file: `${tmpDir()}/store.duckdb`, queryTimeoutMs: 10_000, memoryMb: 64 });
    await store.connect();
    try {
      // A view reads the properties of every committed row of its tenant.
      await store.views.put('acme', parseView('cards', { event: 'pay', measures: ['count', 'sum:amount'] }), 'api');
      // Not JSON: the engine refuses the properties column and quotes it.
      const r: LogRecord = { tenant: 'acme', type: 'pay', key: 'u1', idempotencyKey: 'pay-1', ts: Date.now(), receivedAt: Date.now(), partition: 0, origin: 'live', properties: `{"card": "${SECRET}"`, context: '{}', offset: 1, attempt: 1 };
      const e = await store.commit({ records: [r], partitions: [{ partition: 0, token: 1, upTo: 1 }] }).then(() => null, (x: unknown) => x as Error);
      expect(e).not.toBeNull();
      expect(e!.message).not.toContain('hunter2');
      expect((e as { code?: string }).code).toBe('SLUICE_NON_RETRYABLE');
    } finally {
      await store.close();
    }
  });
});

describe('a failed commit is the row’s fault or the store’s', () => {
  it('commit.out-of-memory-and-duplicate-keys-are-retried-never-dead-lettered', () => {
    const oom = classifyCommitError(new Error('Out of Memory Error: failed to allocate data of size 16.0 MiB (512.0 MiB/512.0 MiB used)'));
    expect(oom).toMatchObject({ code: 'SLUICE_RETRY_AFTER' });
    const dup = classifyCommitError(new Error('Constraint Error: Duplicate key "tenant: acme, minute: 29400000" violates primary key constraint'));
    expect(dup).toMatchObject({ code: 'SLUICE_RETRY_AFTER' });
    const row = classifyCommitError(new Error(`Conversion Error: Could not convert string '${SECRET}' to INT64`));
    expect(row).toMatchObject({ code: 'SLUICE_NON_RETRYABLE' });
    expect(row.message).not.toContain('hunter2');
  });
});
