import { parentPort, workerData } from 'node:worker_threads';
import { openEmbeddedCatalog, openEmbeddedLog, openEmbeddedStore } from '../backends/embedded.js';
import type { Config } from '../config/schema.js';
import { coerceError, RetryAfterError } from '../core/errors.js';
import { createLogger } from '../obs/logger.js';
import { lowerThreadPriority } from './priority.js';
import { startWorkers } from './workers.js';
import type { FromStoreThread, ToStoreThread } from './thread-protocol.js';

/**
 * The store thread of `sluice up`: the consumers and the DuckDB store (which admits one
 * writing process, so everything that writes it lives here), and the queries that read it.
 * The HTTP thread never waits for a store commit; it sends queries here by message.
 */
const config = workerData.config as Config;
const port = parentPort!;
const logger = createLogger(config.logLevel, 'sluice-worker');
if (!lowerThreadPriority()) logger.debug('could not lower the store thread priority; it competes with ingest as an equal');
const log = openEmbeddedLog(config);
const catalog = openEmbeddedCatalog(config);
const store = openEmbeddedStore(config);
const abort = new AbortController();

function send(m: FromStoreThread): void {
  port.postMessage(m);
}

const workersReady = startWorkers(config, { log, store, catalog, logger }, abort.signal);
workersReady.then(
  () => send({ op: 'ready' }),
  (e: unknown) => {
    if (!abort.signal.aborted) send({ op: 'fatal', message: coerceError(e).message });
  },
);

port.on('message', (m: ToStoreThread) => {
  switch (m.op) {
    case 'notify':
      void workersReady.then((w) => w.notify(), () => undefined);
      return;
    case 'counts':
      void (async () => {
        try {
          await workersReady;
          const applied = await store.appliedOffsets();
          const rows = await store.counts(m.query);
          send({ op: 'reply', id: m.id, ok: true, value: { rows, applied: [...applied] } });
        } catch (e: unknown) {
          const err = coerceError(e);
          const code = e instanceof RetryAfterError && /timeout/.test(err.message) ? 'SLUICE_ERR_QUERY_TIMEOUT' : 'SLUICE_ERR_STORE_UNAVAILABLE';
          send({ op: 'reply', id: m.id, ok: false, code, message: err.message });
        }
      })();
      return;
    case 'health':
      void store.health().then((h) => send({ op: 'reply', id: m.id, ok: true, value: h }));
      return;
    case 'stop':
      void (async () => {
        abort.abort(new Error('stopping'));
        const w = await workersReady.catch(() => null);
        await w?.stop();
        await store.close();
        await catalog.close();
        await log.close();
        send({ op: 'stopped' });
      })();
      return;
  }
});
