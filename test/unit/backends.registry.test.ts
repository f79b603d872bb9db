import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BACKENDS, backendFor, ownsDataDir } from '../../src/backends/registry.js';
import { loadConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/obs/logger.js';
import { tmpDir } from '../helpers/tmp.js';

describe('the backend registry', () => {
  it('registry.chooses-the-backend-by-the-scheme-of-the-port-url', () => {
    const chosen = (port: 'log' | 'store' | 'catalog', url: string): string => backendFor(port, url).name;
    expect([chosen('log', 'embedded'), chosen('store', 'embedded'), chosen('catalog', 'embedded')]).toEqual(['sqlite', 'duckdb', 'sqlite']);
    expect([chosen('log', 'nats://a:4222,b:4222'), chosen('log', 'TLS://a:4222')]).toEqual(['nats', 'nats']);
    expect([chosen('store', 'postgres://u@h/db'), chosen('catalog', 'postgresql://u@h/db')]).toEqual(['postgres', 'postgres']);
    // A scheme known for another port is not a backend of this one.
    expect(() => backendFor('store', 'nats://a:4222')).toThrow(/--store "nats:\/\/a:4222" is not a backend sluice knows; expected embedded or postgres:\/\/user@host:5432\/db/);
    for (const port of ['log', 'store', 'catalog'] as const) for (const b of BACKENDS[port]) expect(b.port).toBe(port);
  });

  it('registry.data-dir-is-owned-when-the-log-or-the-store-is-embedded', () => {
    const config = (log: string, store: string) => loadConfig({ env: {}, flags: { log: { url: log }, store: { url: store } } });
    expect(ownsDataDir(config('embedded', 'embedded'))).toBe(true);
    expect(ownsDataDir(config('nats://a:4222', 'embedded'))).toBe(true);
    expect(ownsDataDir(config('embedded', 'postgres://u@h/db'))).toBe(true);
    // The embedded catalog is shared by role processes of one machine.
    expect(ownsDataDir(config('nats://a:4222', 'postgres://u@h/db'))).toBe(false);
  });

  it('config.takes-in-every-backend-config-schema-under-its-port', () => {
    const ports = configSchema.properties as unknown as Record<string, { properties: Record<string, unknown> }>;
    for (const port of ['log', 'store', 'catalog'] as const) {
      for (const b of BACKENDS[port]) {
        for (const [key, schema] of Object.entries(b.configSchema.properties)) expect(ports[port]!.properties[key], `${b.name}: ${port}.${key}`).toEqual(schema);
      }
    }
  });

  it('config.backend-keys-keep-their-file-env-and-flag-names-and-are-validated', () => {
    const file = path.join(tmpDir(), 'sluice.json');
    fs.writeFileSync(file, JSON.stringify({ log: { url: 'nats://a:4222', stream: 'orders' }, store: { memoryMb: 1024 } }));
    const c = loadConfig({ env: { SLUICE_LOG_REPLICAS: '3', SLUICE_LOG_DUPLICATE_WINDOW_MS: '60000', SLUICE_LOG_LEDGER_RUN_KEYS: '5000', SLUICE_LOG_START_TIMEOUT_MS: '5000' }, file, flags: { log: { fsync: 'normal' } } });
    expect(c.log).toEqual({ url: 'nats://a:4222', stream: 'orders', replicas: 3, duplicateWindowMs: 60_000, startTimeoutMs: 5_000, fsync: 'normal', ledgerRunKeys: 5_000, dedupeHorizonMs: 7 * 86_400_000, retentionMs: 86_400_000 });
    expect(loadConfig({ env: {} }).log.startTimeoutMs).toBe(60_000);
    expect(loadConfig({ env: {} }).log.ledgerRunKeys).toBe(32_768);
    expect(() => loadConfig({ env: { SLUICE_LOG_LEDGER_RUN_KEYS: '0' } })).toThrow(/"log.ledgerRunKeys" must be >= 1/);
    expect(c.store).toEqual({ url: 'embedded', memoryMb: 1024, threads: 1 });
    // Defaults come from the backend's schema.
    expect(loadConfig({ env: {} }).log.stream).toBe('sluice');
    expect(() => loadConfig({ env: { SLUICE_LOG_REPLICAS: '9' } })).toThrow(/"log.replicas" must be <= 5/);
    expect(() => loadConfig({ env: { SLUICE_STORE_MEMORY_MB: '8' } })).toThrow(/"store.memoryMb" must be >= 64/);
    expect(() => loadConfig({ env: {}, flags: { log: { streem: 'x' } } })).toThrow(/unknown configuration key "log.streem"/);
    expect(() => loadConfig({ env: { SLUICE_STORE_MEMORY: '1' } })).toThrow(/unknown environment variable SLUICE_STORE_MEMORY;/);
  });
});

describe('the embedded log backend', () => {
  it('services.free-the-leases-of-a-process-that-died-at-start', async () => {
    const config = loadConfig({ env: {}, flags: { dataDir: tmpDir(), partitions: 2 } });
    const backend = backendFor('log', 'embedded');
    const crashed = await backend.create(config);
    expect(await crashed.acquire('workers', 0, 'dead-worker', 60_000)).not.toBeNull();
    // The process dies holding the lease: its log is closed without a release.
    await crashed.close();
    const log = await backend.create(config);
    expect(await log.acquire('workers', 0, 'new-worker', 60_000)).toBeNull();
    const logged: unknown[] = [];
    const logger = createLogger('silent');
    logger.info = ((obj: unknown) => void logged.push(obj)) as typeof logger.info;
    const services = backend.services!(log, { logger });
    expect(services.map((s) => s.name)).toEqual(['log-leases-of-a-dead-process', 'log-retention']);
    const abort = new AbortController();
    for (const s of services) await s.start(abort.signal);
    expect(logged).toEqual([{ leases: 1 }]);
    expect(await log.acquire('workers', 0, 'new-worker', 60_000)).not.toBeNull();
    for (const s of services.reverse()) await s.stop();
    await log.close();
  });
});
