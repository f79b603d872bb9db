import { traceIdOf } from '../obs/tracing.js';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { coerceError, ERRORS, SluiceError, type ErrorCode } from '../core/errors.js';

/** Fastify's own errors, translated into the catalogue. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'SLUICE_ERR_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'SLUICE_ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'SLUICE_ERR_INVALID_JSON',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'SLUICE_ERR_INVALID_BODY',
};

export function toSluiceError(e: unknown, bodyLimit: number): SluiceError {
  if (e instanceof SluiceError) return e;
  const err = coerceError(e) as FastifyError;
  const mapped = err.code ? FASTIFY_CODES[err.code] : undefined;
  if (mapped === 'SLUICE_ERR_BODY_TOO_LARGE') {
    return new SluiceError(mapped, `the body is larger than the ${bodyLimit}-byte limit`, { field: 'body' });
  }
  if (mapped) return new SluiceError(mapped, err.message, { field: 'body' });
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
    return new SluiceError('SLUICE_ERR_INVALID_BODY', err.message);
  }
  return new SluiceError('SLUICE_ERR_INTERNAL', 'internal error; the server log has the details', { cause: err });
}

/** The one place where errors become HTTP responses: `{ statusCode, code, error, message, field? }`. */
export function sendError(reply: FastifyReply, e: SluiceError): FastifyReply {
  if (e.retryAfter !== undefined) reply.header('retry-after', String(Math.max(1, Math.ceil(e.retryAfter))));
  if (e.status === 401) reply.header('www-authenticate', 'Bearer');
  const body: Record<string, unknown> = { statusCode: e.status, code: e.code, error: ERRORS[e.code].title, message: e.message };
  if (e.field !== undefined) body.field = e.field;
  if (e.details !== undefined) body.details = e.details;
  return reply.code(e.status).type('application/json; charset=utf-8').send(body);
}

export function errorHandler(bodyLimit: number) {
  return (e: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const err = toSluiceError(e, bodyLimit);
    if (err.status >= 500) request.log.error({ err: err.cause ?? err, trace_id: traceIdOf(request.traceContext) }, err.message);
    return sendError(reply, err);
  };
}
