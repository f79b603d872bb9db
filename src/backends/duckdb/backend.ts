import type { Backend } from '../backend.js';
import { duckdbStoreConfig } from './config.js';

/** The embedded store: one DuckDB file in the data directory (see ../embedded.ts). The driver loads on first `create`. */
export const duckdbStore: Backend<'store'> = {
  name: 'duckdb',
  port: 'store',
  schemes: ['embedded'],
  example: 'embedded',
  configSchema: duckdbStoreConfig,
  capabilities: { ownsDataDir: true },
  async create(config) {
    const { openEmbeddedStore } = await import('../embedded.js');
    return openEmbeddedStore(config);
  },
  async probe(config) {
    const { probeEmbeddedFile } = await import('../embedded.js');
    return probeEmbeddedFile(config.dataDir, 'store', 'duckdb', 'embedded DuckDB');
  },
};
