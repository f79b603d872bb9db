import {
  defaultTextMapGetter,
  defaultTextMapSetter,
  ROOT_CONTEXT,
  trace,
  TraceFlags,
  SpanStatusCode,
  type Attributes,
  type Context,
  type Link,
  type SpanOptions,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { Config } from '../config/schema.js';

/**
 * Traces from ingest to storage, with OpenTelemetry:
 *
 *   POST /v1/events (server span, continuing the producer's traceparent)
 *     └─ log.append
 *   worker.batch (its own trace, linked to the ingest span of every request in the batch,
 *     │           through the traceparent kept in each log record)
 *     └─ store.commit
 *
 * Off by default: the tracer is then the API's no-op one, which costs a few allocations per
 * request, and the producer's traceparent still travels through the log. Each thread of
 * `sluice up` has its own provider (providers do not cross threads); nothing is registered
 * globally, so that several pipelines in one process (tests) do not share one.
 */

const propagator = new W3CTraceContextPropagator();
const noop = trace.getTracer('sluice');

export interface Tracing {
  tracer: Tracer;
  /** Flushes what is buffered and stops. Must not throw. */
  shutdown(): Promise<void>;
}

export async function startTracing(config: Readonly<Config>, role: string, exporter?: SpanExporter): Promise<Tracing> {
  if (!exporter && !config.tracing.enabled) return { tracer: noop, shutdown: async () => undefined };
  // Loaded only when tracing is on: the embedded user who never traces never loads them.
  const spanExporter =
    exporter ??
    (config.tracing.protocol === 'http/json'
      ? new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter()
      : new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter());
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': config.tracing.serviceName, 'sluice.role': role }),
    spanProcessors: [new BatchSpanProcessor(spanExporter, { maxQueueSize: 4096, scheduledDelayMillis: 1000 })],
    spanLimits: { linkCountLimit: MAX_LINKS },
  });
  return {
    tracer: provider.getTracer('sluice'),
    shutdown: () => provider.shutdown().catch(() => undefined),
  };
}

/** A batch span links to at most this many ingest spans. */
export const MAX_LINKS = 128;

/** The context a request's headers carry (W3C `traceparent`/`tracestate`), or the root. */
export function extractContext(headers: Record<string, string | string[] | undefined>): Context {
  return propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
}

/** The traceparent of the span in `ctx`, or undefined when it carries no valid span. */
export function traceparentOf(ctx: Context): string | undefined {
  const carrier: Record<string, string> = {};
  propagator.inject(ctx, carrier, defaultTextMapSetter);
  return carrier.traceparent;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** Links to the distinct traceparents of `records`, at most MAX_LINKS. */
export function linksOf(records: Iterable<{ trace?: string }>): Link[] {
  const seen = new Set<string>();
  const links: Link[] = [];
  for (const r of records) {
    if (!r.trace || seen.has(r.trace)) continue;
    seen.add(r.trace);
    const m = TRACEPARENT.exec(r.trace);
    if (!m) continue;
    const context: SpanContext = { traceId: m[1]!, spanId: m[2]!, traceFlags: parseInt(m[3]!, 16) & TraceFlags.SAMPLED, isRemote: true };
    links.push({ context });
    if (links.length === MAX_LINKS) break;
  }
  return links;
}

/**
 * Runs `fn` inside a span named `name` (child of `parent`), ending it whatever happens: a
 * failure marks it as an error, a result may add attributes. Without a tracer, `fn` runs as is.
 */
export async function inSpan<T>(
  tracer: Tracer | undefined,
  name: string,
  options: SpanOptions,
  parent: Context,
  fn: (ctx: Context) => Promise<T>,
  attributesOf?: (result: T) => Attributes,
): Promise<T> {
  if (!tracer) return fn(parent);
  const span = tracer.startSpan(name, options, parent);
  try {
    const result = await fn(trace.setSpan(parent, span));
    if (attributesOf) span.setAttributes(attributesOf(result));
    return result;
  } catch (e: unknown) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: e instanceof Error ? e.message : String(e) });
    throw e;
  } finally {
    span.end();
  }
}

/** The trace id of the span in `ctx`, for log lines; undefined when there is none. */
export function traceIdOf(ctx: Context): string | undefined {
  const sc = trace.getSpanContext(ctx);
  return sc && trace.isSpanContextValid(sc) ? sc.traceId : undefined;
}
