/**
 * A service: one long-running part of a process (a consumer group, log retention, the
 * conservation check, alert evaluation, a rollout's controller). The assembly
 * (`src/app/roles.ts`) says which services each role runs in which thread, starts them in
 * order and stops them in reverse order; a backend may bring services of its own (the
 * embedded log's retention).
 *
 * Call order: `start(signal)` once; `health()` any time; `stop()` once (idempotent). The
 * signal aborts when the process stops: a service's long calls take it.
 */
export interface Service {
  readonly name: string;
  /** Starts the service; resolves once it runs (not when its work ends). May throw: the start fails. */
  start(signal: AbortSignal): Promise<void> | void;
  /** Stops it and waits for the work in hand. Idempotent; must not throw. */
  stop(): Promise<void>;
  /** Whether it is doing its job, and if not, why (readiness reports it). */
  health(): ServiceHealth;
}

export interface ServiceHealth {
  ok: boolean;
  detail?: string;
}

/**
 * Where a component writes its log lines: one line per change of state, never per event.
 * pino's logger is one (`src/obs/logger.ts`).
 */
export interface Logger {
  debug(fields: object, message?: string): void;
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
}
