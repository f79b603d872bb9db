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
  },
} as const;
