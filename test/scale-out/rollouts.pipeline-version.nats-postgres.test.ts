import { afterAll } from 'vitest';
import { pipelineRolloutScenarios } from '../helpers/pipeline-rollout-scenarios.js';
import { deploy, type Deployment } from '../helpers/scale-out.js';
import { freePort, startServer, stop } from '../helpers/server.js';
import { natsAvailable, postgresAvailable } from '../helpers/services.js';

/** The pipeline-version rollout scenarios on NATS JetStream and PostgreSQL (log, store and catalog), one `sluice up`. */
const deployments: Deployment[] = [];
afterAll(async () => {
  for (const d of deployments) await d.cleanup();
}, 60_000);

if ((await natsAvailable()) && (await postgresAvailable())) {
  pipelineRolloutScenarios('NATS + PostgreSQL', async () => {
    const d = await deploy();
    deployments.push(d);
    const server = await startServer(d.dataDir, await freePort(), d.args, d.env, 'up');
    return { url: server.url, keys: d.tenant, stop: async () => void (await stop(server)) };
  });
}
