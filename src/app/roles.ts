/**
 * Which services each role runs, in which thread: the one place that says it.
 *
 * A process runs one or more roles: `sluice up` all three on the embedded default,
 * `sluice ingest|worker|query` one each beside others on a shared log and store.
 *
 * | thread | service | roles |
 * |---|---|---|
 * | HTTP (main) | data-directory lock | an embedded log or store (`up`) |
 * | HTTP | tracing | all |
 * | HTTP | log, catalog (engines) | all |
 * | HTTP | quotas and the log-backlog sampler (`src/http/app.ts`) | ingest |
 * | HTTP | the HTTP server: health, status and metrics; ingest routes; query, schema, ops and event routes | all; ingest; query |
 * | HTTP | log retention (the embedded log's, which has one writer) | an embedded log |
 * | store (`store-thread.ts`) | engines: log, catalog, store | all |
 * | store | consumer group `workers` (read → pipeline stages → commit → ack) | worker |
 * | store | conservation check, configured views, processed reports | all (the first two need the store) |
 *
 * The store thread exists in every role: queries and status read the store through it, so a
 * slow query never holds the HTTP thread, and DuckDB's single writer lives in one thread.
 */
export type Role = 'ingest' | 'worker' | 'query';

export const ALL_ROLES: readonly Role[] = ['ingest', 'worker', 'query'];

/** What the HTTP server of a process serves besides health, status and metrics. */
export function servedApis(roles: readonly Role[]): { ingest: boolean; query: boolean } {
  return { ingest: roles.includes('ingest'), query: roles.includes('query') };
}

/** Whether the store thread runs consumers. */
export function consumes(roles: readonly Role[]): boolean {
  return roles.includes('worker');
}

export function isAllRoles(roles: readonly Role[]): boolean {
  return ALL_ROLES.every((r) => roles.includes(r));
}
