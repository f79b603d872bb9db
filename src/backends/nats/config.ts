/** The keys of `config.log` only the NATS JetStream log reads. */
export const natsLogConfig = {
  type: 'object',
  properties: {
    stream: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$', default: 'sluice', description: 'NATS: the stream, and the prefix of its subjects and KV buckets' },
    replicas: { type: 'integer', minimum: 1, maximum: 5, default: 1, description: 'NATS: stream replicas (3 in production, on a 3-node cluster)' },
    duplicateWindowMs: {
      type: 'integer',
      minimum: 1_000,
      default: 120_000,
      description: "NATS: how long the server remembers message ids (memory); the store's key ledger covers the rest of the dedupe horizon",
    },
    startTimeoutMs: {
      type: 'integer',
      minimum: 1_000,
      default: 60_000,
      description: 'NATS: how long a starting process waits for the servers (refused connections, a cluster electing its leader) before it exits with 1',
    },
  },
} as const;

/** `nats://a:4222,b:4222` → the servers the client should know. */
export function natsServers(url: string): string[] {
  const rest = url.replace(/^[a-z]+:\/\//i, '');
  return rest.split(',').map((h) => h.trim()).filter((h) => h.length > 0);
}
