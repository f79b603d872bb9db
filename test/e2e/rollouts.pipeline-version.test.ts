import { pipelineRolloutScenarios } from '../helpers/pipeline-rollout-scenarios.js';
import { freePort, keysFrom, startServer, stop } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

/** The pipeline-version rollout scenarios on the embedded engines: SQLite log and catalog, DuckDB store. */
pipelineRolloutScenarios('embedded', async () => {
  const server = await startServer(tmpDir(), await freePort());
  return { url: server.url, keys: keysFrom(server.stdout), stop: async () => void (await stop(server)) };
});
