/** The keys of `config.log` only the embedded (SQLite) log reads. */
export const sqliteLogConfig = {
  type: 'object',
  properties: {
    fsync: { enum: ['always', 'normal', 'off'], default: 'always', description: 'embedded log: always: fsync every group commit' },
    ledgerRunKeys: {
      type: 'integer',
      minimum: 1,
      default: 32_768,
      description: 'embedded log: keys the dedupe ledger appends before rewriting them as a sorted run (memory: about 150 bytes a key)',
    },
  },
} as const;
