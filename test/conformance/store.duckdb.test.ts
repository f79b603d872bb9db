import path from 'node:path';
import { DuckdbStore } from '../../src/backends/duckdb/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { storeConformance } from './store-suite.js';

storeConformance('duckdb', async () => {
  const file = path.join(tmpDir(), 'store.duckdb');
  let store = new DuckdbStore({ file, chunkRows: 64 });
  await store.connect();
  return {
    get store() {
      return store;
    },
    reopen: async () => {
      await store.close();
      store = new DuckdbStore({ file });
      await store.connect();
      return store;
    },
  };
});
