/**
 * The one configuration schema, with the default beside each field. Every source (file,
 * SLUICE_* environment variables, command-line flags) is merged into this shape, then
 * validated (unknown keys are errors that name the key) and frozen.
 */
export const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    dataDir: { type: 'string', minLength: 1, default: './data', description: 'where the embedded log, catalog and store live' },
    host: { type: 'string', minLength: 1, default: '127.0.0.1', description: 'address the HTTP server listens on' },
    port: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 },
    partitions: { type: 'integer', minimum: 1, maximum: 1024, default: 16 },
    logLevel: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
    log: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        fsync: { enum: ['always', 'normal', 'off'], default: 'always', description: 'always: fsync every group commit' },
        dedupeHorizonMs: { type: 'integer', minimum: 60_000, default: 7 * 86_400_000 },
        retentionMs: { type: 'integer', minimum: 0, default: 86_400_000, description: 'how long acked records stay in the log' },
        url: {
          type: 'string',
          minLength: 1,
          default: 'embedded',
          description: 'embedded (SQLite in the data directory) or nats://host:4222[,host2:4222,…] (NATS JetStream)',
        },
        stream: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$', default: 'sluice', description: 'NATS: the stream, and the prefix of its subjects and KV buckets' },
        replicas: { type: 'integer', minimum: 1, maximum: 5, default: 1, description: 'NATS: stream replicas (3 in production, on a 3-node cluster)' },
        duplicateWindowMs: {
          type: 'integer',
          minimum: 1_000,
          default: 120_000,
          description: 'NATS: how long the server remembers message ids (memory); the store\'s key ledger covers the rest of the dedupe horizon',
        },
      },
    },
    store: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        url: { type: 'string', minLength: 1, default: 'embedded', description: 'embedded (DuckDB in the data directory) or postgres://user@host:5432/db[?schema=name]' },
        memoryMb: {
          type: 'integer',
          minimum: 64,
          default: 512,
          description: 'memory the embedded DuckDB store may hold (MiB): its cache of table blocks and its queries; larger queries spill to disk',
        },
      },
    },
    catalog: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        url: { type: 'string', minLength: 1, default: 'embedded', description: 'embedded (SQLite in the data directory) or postgres://user@host:5432/db[?schema=name]' },
      },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        bodyBytes: { type: 'integer', minimum: 1024, default: 1_048_576 },
        eventBytes: { type: 'integer', minimum: 256, default: 32_768 },
        batchEvents: { type: 'integer', minimum: 1, default: 1_000 },
        decompressedBytes: { type: 'integer', minimum: 1024, default: 10_485_760 },
        depth: { type: 'integer', minimum: 1, maximum: 256, default: 32 },
        requestTimeoutMs: { type: 'integer', minimum: 1_000, default: 30_000, description: 'a request (headers and body) must arrive within this; slow clients are disconnected' },
        logBacklog: { type: 'integer', minimum: 1, default: 50_000_000, description: 'events in the log not yet processed, all tenants; over it ingest answers 503' },
        eventLoopLagMs: { type: 'integer', minimum: 0, default: 2_000, description: 'worst event-loop delay of the last second; over it ingest answers 503 (0 = off)' },
      },
    },
    worker: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        consumers: { type: 'integer', minimum: 1, maximum: 64, default: 1, description: 'consumer tasks sharing the partitions' },
        readBatch: { type: 'integer', minimum: 1, default: 5_000, description: 'records read per partition per round' },
        commitBatch: { type: 'integer', minimum: 1, default: 20_000, description: 'records per store transaction' },
        maxAttempts: { type: 'integer', minimum: 1, default: 5 },
        leaseTtlMs: { type: 'integer', minimum: 1_000, default: 6_000, description: 'a dead worker\'s partitions are taken over within 4/3 of this (8 s)' },
        pollMs: { type: 'integer', minimum: 1, default: 50 },
        heapMb: { type: 'integer', minimum: 64, default: 128, description: 'JavaScript heap of the store thread (MiB); DuckDB memory is apart' },
        id: {
          type: 'string',
          pattern: '^[A-Za-z0-9_.-]{0,64}$',
          default: '',
          description: 'a stable name for this worker (e.g. systemd %i): restarted after a crash, it takes its leases back at once; unique per running worker',
        },
      },
    },
    obs: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        metrics: { type: 'boolean', default: true, description: 'serve /metrics and keep the counters' },
        maxTenantLabels: { type: 'integer', minimum: 0, default: 100, description: 'tenants with their own metric label; the rest are "other"' },
        conservationIntervalMs: { type: 'integer', minimum: 1_000, default: 15_000 },
        conservationWindowMs: { type: 'integer', minimum: 60_000, default: 3_600_000, description: 'how far back the conservation check looks' },
        conservationFullIntervalMs: {
          type: 'integer',
          minimum: 1_000,
          default: 300_000,
          description: 'the time in which the check reads the whole window again, a slice per run besides the minutes settled since the run before',
        },
      },
    },
    tracing: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'OpenTelemetry traces over OTLP/HTTP; also set from the standard OTEL_* variables',
      properties: {
        enabled: { type: 'boolean', default: false },
        protocol: { enum: ['http/protobuf', 'http/json'], default: 'http/protobuf' },
        serviceName: { type: 'string', minLength: 1, default: 'sluice' },
      },
    },
    alerts: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        enabled: { type: 'boolean', default: true, description: 'evaluate alert rules and deliver notifications in this process' },
        evaluateIntervalMs: { type: 'integer', minimum: 1_000, default: 30_000, description: 'how often alert rules are evaluated (and group timers checked)' },
        deliverIntervalMs: { type: 'integer', minimum: 100, default: 1_000, description: 'how often the notification outbox is delivered' },
        leaseTtlMs: { type: 'integer', minimum: 1_000, default: 30_000, description: 'scaled out, another query process takes over evaluation within this after the evaluating one dies' },
        externalUrl: { type: 'string', default: '', description: 'the URL users reach sluice at, for links in notifications (default: the listen address)' },
      },
    },
    query: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        timeoutMs: { type: 'integer', minimum: 1, default: 10_000 },
        maxBuckets: { type: 'integer', minimum: 1, default: 10_000 },
        maxRows: { type: 'integer', minimum: 1, maximum: 1_000_000, default: 10_000, description: 'rows (and groups) in one answer; more is refused with 422 unless the query sets a limit' },
        streamBuffer: { type: 'integer', minimum: 1, default: 1_000, description: 'events queued for one live-tail client; a client further behind is disconnected' },
      },
    },
    quotas: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: "per-tenant ingest limits, unless a tenant's settings say otherwise (sluice tenant set); 0 = unlimited",
      properties: {
        eventsPerSecond: { type: 'integer', minimum: 0, default: 0 },
        bytesPerSecond: { type: 'integer', minimum: 0, default: 0 },
        backlog: { type: 'integer', minimum: 0, default: 1_000_000, description: 'events accepted and not yet processed' },
      },
    },
    views: {
      type: 'array',
      default: [],
      description: 'views declared for every tenant: {name, event, filters, dimensions, measures, grain} as PUT /v1/views/:name takes them',
      items: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } },
    },
    events: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'the time policy applied at ingest',
      properties: {
        lateWindowMs: { type: 'integer', minimum: 0, default: 30 * 86_400_000, description: 'older events are dead-lettered as too_late; 0 = no limit' },
        futureToleranceMs: { type: 'integer', minimum: 0, default: 300_000, description: 'later event times are clamped to the receive time and flagged' },
        schemaRefreshMs: { type: 'integer', minimum: 0, default: 1_000, description: 'how soon a schema published by another process is seen' },
      },
    },
    enrich: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        anonymizeIp: { type: 'boolean', default: true, description: 'zero the last octet of IPv4 (last 80 bits of IPv6) in context.ip' },
        userAgent: { type: 'boolean', default: true, description: 'parse context.user_agent into context.ua' },
        plugins: {
          type: 'array',
          default: [],
          description: 'custom enrichers: modules whose default export is an Enricher (see src/worker/enrich.ts)',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['module'],
            properties: { module: { type: 'string', minLength: 1 }, options: { type: 'object', default: {} } },
          },
        },
      },
    },
    breaker: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'the dead-letter ratio breaker: holds a tenant whose events mostly fail (a bad deploy)',
      properties: {
        enabled: { type: 'boolean', default: true },
        ratio: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.5, description: 'trips when more than this share of the window dead-letters' },
        window: { type: 'integer', minimum: 10, default: 1_000, description: 'the last K processed events of a tenant' },
        minEvents: { type: 'integer', minimum: 1, default: 100, description: 'events seen before the ratio is judged' },
      },
    },
  },
} as const;

export interface Config {
  dataDir: string;
  host: string;
  port: number;
  partitions: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  log: { fsync: 'always' | 'normal' | 'off'; dedupeHorizonMs: number; retentionMs: number; url: string; stream: string; replicas: number; duplicateWindowMs: number };
  store: { url: string; memoryMb: number };
  catalog: { url: string };
  limits: { bodyBytes: number; eventBytes: number; batchEvents: number; decompressedBytes: number; depth: number; requestTimeoutMs: number; logBacklog: number; eventLoopLagMs: number };
  worker: { consumers: number; readBatch: number; commitBatch: number; maxAttempts: number; leaseTtlMs: number; pollMs: number; heapMb: number; id: string };
  obs: { metrics: boolean; maxTenantLabels: number; conservationIntervalMs: number; conservationWindowMs: number; conservationFullIntervalMs: number };
  tracing: { enabled: boolean; protocol: 'http/protobuf' | 'http/json'; serviceName: string };
  query: { timeoutMs: number; maxBuckets: number; maxRows: number; streamBuffer: number };
  alerts: { enabled: boolean; evaluateIntervalMs: number; deliverIntervalMs: number; leaseTtlMs: number; externalUrl: string };
  views: ({ name: string } & Record<string, unknown>)[];
  quotas: { eventsPerSecond: number; bytesPerSecond: number; backlog: number };
  events: { lateWindowMs: number; futureToleranceMs: number; schemaRefreshMs: number };
  enrich: { anonymizeIp: boolean; userAgent: boolean; plugins: { module: string; options: Record<string, unknown> }[] };
  breaker: { enabled: boolean; ratio: number; window: number; minEvents: number };
}
