import { describe, expect, it } from 'vitest';
import { cliCommand, loadConfig } from '../../src/config/load.js';

describe('config', () => {
  it('load.applies-defaults-then-env-then-flags-and-freezes', () => {
    const c = loadConfig({ env: { SLUICE_PORT: '9000', SLUICE_LOG_FSYNC: 'normal', SLUICE_WORKER_MAX_ATTEMPTS: '7' }, flags: { port: 9100 } });
    expect(c.port).toBe(9100);
    expect(c.log.fsync).toBe('normal');
    expect(c.worker.maxAttempts).toBe(7);
    expect(c.partitions).toBe(16);
    expect(c.limits).toEqual({ bodyBytes: 1_048_576, eventBytes: 32_768, batchEvents: 1_000, decompressedBytes: 10_485_760, depth: 32, requestTimeoutMs: 30_000, logBacklog: 50_000_000, eventLoopLagMs: 2_000 });
    expect(Object.isFrozen(c) && Object.isFrozen(c.log)).toBe(true);
  });

  it('load.names-the-bad-key', () => {
    expect(() => loadConfig({ env: {}, flags: { prot: 1 } })).toThrow(/unknown configuration key "prot"/);
    expect(() => loadConfig({ env: {}, flags: { log: { fsnyc: 'always' } } })).toThrow(/"log.fsnyc"/);
    expect(() => loadConfig({ env: { SLUICE_PORT: 'eighty' } })).toThrow(/"port" must be integer/);
    expect(() => loadConfig({ env: { SLUICE_LOG_FSYNC: 'sometimes' } })).toThrow(/"log.fsync"/);
    expect(() => loadConfig({ env: { SLUICE_PROT: '1' } })).toThrow(/unknown environment variable SLUICE_PROT/);
    // The test suite's addresses (README) are not configuration: sluice started from the same shell ignores them.
    expect(loadConfig({ env: { SLUICE_TEST_NATS: 'nats://10.0.0.9:4222', SLUICE_TEST_POSTGRES: 'postgres://ci@db/test' } }).log.url).toBe('embedded');
    expect(() => loadConfig({ env: {}, file: '/nonexistent/sluice.json' })).toThrow(/cannot read the config file/);
    expect(() => loadConfig({ env: {}, flags: { views: [{ name: 'v', measures: ['sum:a b'] }] } })).toThrow(/views\[0\] \("v"\): "properties.a b" is not a field/);
    expect(() => loadConfig({ env: {}, flags: { views: [{ name: 'v' }, { name: 'v' }] } })).toThrow(/declared twice/);
    // A backend URL is checked at load, for the port it is given to.
    expect(() => loadConfig({ env: { SLUICE_STORE_URL: 'mysql://db/x' } })).toThrow(/--store "mysql:\/\/db\/x" is not a backend sluice knows/);
    expect(() => loadConfig({ env: {}, flags: { log: { url: 'postgres://db/x' } } })).toThrow(/--log .* expected embedded or nats:/);
    expect(() => loadConfig({ env: {}, flags: { catalog: { url: 'nats://a:4222' } } })).toThrow(/--catalog .* expected embedded or postgres:/);
    const scaled = loadConfig({ env: { SLUICE_LOG_URL: 'nats://a:4222,b:4222', SLUICE_STORE_URL: 'postgres://u@h/db', SLUICE_CATALOG_URL: 'postgres://u@h/db' } });
    expect([scaled.store.url, scaled.catalog.url]).toEqual(['postgres://u@h/db', 'postgres://u@h/db']);
  });
});

describe('cliCommand', () => {
  it('config.suggested-commands-say-npx-sluice-when-run-through-npm-and-sluice-otherwise', () => {
    expect(cliCommand({ npm_command: 'exec' })).toBe('npx sluice');
    expect(cliCommand({ npm_command: 'start' })).toBe('npx sluice');
    expect(cliCommand({})).toBe('sluice');
  });
});
