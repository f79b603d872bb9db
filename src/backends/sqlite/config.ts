/** The keys of `config.log` only the embedded (SQLite) log reads. */
export const sqliteLogConfig = {
  type: 'object',
  properties: {
    fsync: { enum: ['always', 'normal', 'off'], default: 'always', description: 'embedded log: always: fsync every group commit' },
  },
} as const;
