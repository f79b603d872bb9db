import type { FromSchema } from 'json-schema-to-ts';
import { duckdbStoreConfig } from '../backends/duckdb/config.js';
import { natsLogConfig } from '../backends/nats/config.js';
import { sqliteLogConfig } from '../backends/sqlite/config.js';

/**
 * The one configuration schema, with the default beside each field. Every source (file,
 * SLUICE_* environment variables, command-line flags) is merged into this shape, then
 * validated (unknown keys are errors that name the key) and frozen. The keys only one backend
 * reads are that backend's (its `configSchema`, e.g. src/backends/nats/config.ts), taken in
 * under the port they belong to.
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
    logFormat: { enum: ['auto', 'json', 'pretty'], default: 'auto', description: 'log lines on stderr: JSON lines, or one readable line per entry (pino-pretty); auto: pretty on a terminal, JSON otherwise' },
    log: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        dedupeHorizonMs: { type: 'integer', minimum: 60_000, default: 7 * 86_400_000 },
        retentionMs: { type: 'integer', minimum: 0, default: 86_400_000, description: 'how long acked records stay in the log' },
        url: {
          type: 'string',
          minLength: 1,
          default: 'embedded',
          description: 'embedded (SQLite in the data directory) or nats://host:4222[,host2:4222,…] (NATS JetStream)',
        },
        ...sqliteLogConfig.properties,
        ...natsLogConfig.properties,
      },
    },
    store: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        url: { type: 'string', minLength: 1, default: 'embedded', description: 'embedded (DuckDB in the data directory) or postgres://user@host:5432/db[?schema=name]' },
        ...duckdbStoreConfig.properties,
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
        pollMs: { type: 'integer', minimum: 1, default: 50, description: 'the idle wait after a round that found no records (ms); new records on the embedded log wake the consumer sooner' },
        idleMaxMs: {
          type: 'integer',
          minimum: 1,
          default: 250,
          description: 'the longest idle wait (ms): it doubles from pollMs while rounds stay empty, so an idle worker on NATS asks for records 4 times a second instead of 20',
        },
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
        metricsAddress: {
          type: 'string',
          pattern: '^$|^(\\[[0-9A-Fa-f:.]+\\]|[^:\\[\\]]+):[0-9]{1,5}$',
          default: '',
          description:
            'host:port of a second listener serving only /metrics, /healthz and /readyz (e.g. 10.0.0.5:9464 on a private network); empty: none. On the API address, /metrics answers loopback clients only',
        },
        readyFreshnessSeconds: {
          type: 'number',
          minimum: 0,
          default: 300,
          description: '/readyz answers 503 while the oldest unprocessed event is older than this (the pipeline is not keeping up); 0: not checked',
        },
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
        outboxRetentionMs: { type: 'integer', minimum: 60_000, default: 432_000_000, description: "how long delivered notifications stay in the outbox (120 h, Alertmanager's --data.retention); undelivered ones stay until delivered" },
        externalUrl: { type: 'string', default: '', description: 'the URL users reach sluice at, for links in notifications (default: the listen address)' },
        privateReceivers: {
          type: 'boolean',
          default: true,
          description: 'whether alert receivers may be on loopback and private networks; set false where tenants you do not trust write receivers (link-local addresses, where cloud metadata lives, are always refused)',
        },
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
        readers: {
          type: 'integer',
          minimum: 1,
          maximum: 64,
          default: 4,
          description: 'embedded store: connections queries run on, each query on one of its own (a timeout interrupts only it); more queries wait in a fair per-tenant line',
        },
        readersPerTenant: { type: 'integer', minimum: 1, maximum: 64, default: 2, description: 'embedded store: readers one tenant may hold at once' },
        viewsPerTenant: {
          type: 'integer',
          minimum: 0,
          default: 20,
          description: 'views a tenant may declare through the API (each is maintained in every commit of its events and held in store memory while it builds); one more is refused with 409',
        },
        streamsPerKey: { type: 'integer', minimum: 1, default: 10, description: 'open live-tail streams (GET /v1/stream) of one key; one more is refused with 429' },
        streamsPerTenant: { type: 'integer', minimum: 1, default: 50, description: 'open live-tail streams of one tenant, all its keys together; one more is refused with 429' },
        streams: { type: 'integer', minimum: 1, default: 500, description: 'open live-tail streams of this process, all tenants together; one more is refused with 429' },
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
        anonymizeIp: {
          type: 'boolean',
          default: true,
          description: 'zero the last octet of IPv4 (last 80 bits of IPv6) in context.ip at ingest, before the log: no raw address in the log, live tail, dead letters or store',
        },
        userAgent: { type: 'boolean', default: true, description: 'parse context.user_agent (or Segment\'s context.userAgent) into context.ua' },
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
    cors: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'browsers on the ingest routes (write keys only; read and admin routes never answer CORS)',
      properties: {
        origins: { type: 'array', items: { type: 'string', minLength: 1 }, default: ['*'], description: 'origins allowed to send events; "*" = any' },
        tenants: {
          type: 'object',
          default: {},
          description: 'per tenant: its allowed origins, in place of "origins"',
          additionalProperties: { type: 'array', items: { type: 'string', minLength: 1 } },
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

/**
 * The configuration, as validated and frozen by loadConfig: derived from the schema (every
 * field has a default, so every field is present).
 */
export type Config = FromSchema<typeof configSchema>;
