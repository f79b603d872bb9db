import { rolloutScenarios } from '../helpers/rollout-scenarios.js';
import { freePort, keysFrom, startServer, stop } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

/** The rollout scenarios on the embedded engines: SQLite log and catalog, DuckDB store. */
rolloutScenarios('embedded', async () => {
  const server = await startServer(tmpDir(), await freePort());
  return { url: server.url, keys: keysFrom(server.stdout), stop: async () => void (await stop(server)) };
});
