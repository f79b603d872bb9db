/** The keys of `config.store` only the embedded (DuckDB) store reads. */
export const duckdbStoreConfig = {
  type: 'object',
  properties: {
    memoryMb: {
      type: 'integer',
      minimum: 64,
      default: 512,
      description: 'memory the embedded DuckDB store may hold (MiB): its cache of table blocks and its queries; larger queries spill to disk',
    },
    threads: {
      type: 'integer',
      minimum: 1,
      maximum: 64,
      default: 1,
      description:
        "DuckDB's threads: with more than 1, its background threads run every query's work, whichever tenant's, so one tenant's heavy query slows another's; with 1, each query runs on its own reader's thread and the read pool shares the cores fairly (see docs/operations.md)",
    },
  },
} as const;
