import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { startPipeline, until, type Pipeline } from '../helpers/pipeline.js';
import { freePort, startServer, stop, type ServerProcess } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

let p: Pipeline | null = null;
let server: ServerProcess | null = null;
let collector: http.Server | null = null;
afterEach(async () => {
  await p?.close();
  if (server) await stop(server);
  await new Promise((r) => (collector ? collector.close(r) : r(undefined)));
  p = server = collector = null;
});

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PRODUCER_SPAN = '00f067aa0ba902b7';

it('tracing.follows-one-event-from-the-producer-through-ingest-and-the-log-to-the-store', async () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  p = await startPipeline({}, { tracer: provider.getTracer('test') });
  const r = await p.app.inject({
    method: 'POST',
    url: '/v1/events',
    headers: { authorization: `Bearer ${p.tenant.writeKey}`, traceparent: `00-${TRACE_ID}-${PRODUCER_SPAN}-01` },
    payload: { type: 'checkout', key: 'u-1' },
  });
  expect(r.statusCode).toBe(202);
  await until(() => exporter.getFinishedSpans().some((s) => s.name === 'store.commit' && s.attributes['sluice.stored'] === 1));

  const spans = exporter.getFinishedSpans();
  const one = (name: string) => {
    const found = spans.filter((s) => s.name === name);
    expect(found, name).toHaveLength(1);
    return found[0]!;
  };
  const ingest = one('POST /v1/events');
  expect(ingest.spanContext().traceId).toBe(TRACE_ID); // the producer's trace continues
  expect(ingest.parentSpanContext?.spanId).toBe(PRODUCER_SPAN);
  expect(ingest.attributes['http.response.status_code']).toBe(202);

  const append = one('log.append');
  expect(append.spanContext().traceId).toBe(TRACE_ID);
  expect(append.parentSpanContext?.spanId).toBe(ingest.spanContext().spanId);
  expect(append.attributes['sluice.accepted']).toBe(1);

  const batch = spans.find((s) => s.name === 'worker.batch' && s.links.length > 0)!;
  expect(batch.links.map((l) => l.context.spanId)).toEqual([ingest.spanContext().spanId]);
  expect(batch.links[0]!.context.traceId).toBe(TRACE_ID);

  const commit = spans.find((s) => s.name === 'store.commit' && s.attributes['sluice.stored'] === 1)!;
  expect(commit.parentSpanContext?.spanId).toBe(batch.spanContext().spanId);
  expect(commit.spanContext().traceId).toBe(batch.spanContext().traceId);
  await provider.shutdown();
});

/** A minimal OTLP/HTTP collector: records each export request. */
async function startCollector(): Promise<{ url: string; requests: { contentType: string; body: Buffer }[] }> {
  const requests: { contentType: string; body: Buffer }[] = [];
  collector = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces') requests.push({ contentType: String(req.headers['content-type']), body: Buffer.concat(chunks) });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => collector!.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`, requests };
}

for (const protocol of ['http/json', 'http/protobuf'] as const) {
  it(`tracing.exports-otlp-${protocol.replace('/', '-')}-when-the-standard-variables-say-so`, async () => {
    const c = await startCollector();
    server = await startServer(tmpDir(), await freePort(), [], { OTEL_EXPORTER_OTLP_ENDPOINT: c.url, OTEL_EXPORTER_OTLP_PROTOCOL: protocol, OTEL_SERVICE_NAME: 'sluice-test' });
    const writeKey = /write key:\s+(\S+)/.exec(server.stdout)![1]!;
    const r = await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${writeKey}` }, body: '{"type":"t"}' });
    expect(r.status).toBe(202);
    // Both threads export: the HTTP thread's ingest spans and the store thread's commit spans.
    await until(() => {
      const all = c.requests.map((q) => q.body.toString('latin1')).join('');
      return all.includes('POST /v1/events') && all.includes('store.commit') && all.includes('sluice-test');
    }, 20_000);
    const expected = protocol === 'http/json' ? 'application/json' : 'application/x-protobuf';
    expect(c.requests.every((q) => q.contentType.startsWith(expected))).toBe(true);
  });
}
