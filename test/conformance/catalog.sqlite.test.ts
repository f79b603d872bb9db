import path from 'node:path';
import { SqliteCatalog } from '../../src/backends/sqlite/catalog.js';
import { tmpDir } from '../helpers/tmp.js';
import { catalogConformance } from './catalog-suite.js';

catalogConformance('sqlite', async () => {
  const file = path.join(tmpDir('sluice-catalog-'), 'sluice.db');
  return { catalog: new SqliteCatalog(file), another: async () => new SqliteCatalog(file) };
});
