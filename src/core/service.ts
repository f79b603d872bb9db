import { systemClock, type Clock } from './clock.js';
import { coerceError } from './errors.js';

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


/**
 * A service that runs `run` every `everyMs` on the clock: the next run is scheduled when the
 * previous one ends (runs never overlap). A failed run is logged (once per change of error)
 * and retried at the next tick; its error shows in `health()` until a run succeeds.
 */
export function periodic(
  name: string,
  everyMs: number,
  run: (signal: AbortSignal) => Promise<void> | void,
  opts: { clock?: Clock; logger?: Logger; runAtStart?: boolean } = {},
): Service & { runNow(): Promise<void> } {
  const clock = opts.clock ?? systemClock;
  const abort = new AbortController();
  let timer: ReturnType<Clock['setTimeout']> | null = null;
  let running: Promise<void> = Promise.resolve();
  let lastError: string | null = null;
  let stopped = false;

  const once = (): Promise<void> =>
    (running = (async () => {
      try {
        await run(abort.signal);
        if (lastError !== null) opts.logger?.info({ service: name }, `${name}: recovered`);
        lastError = null;
      } catch (e: unknown) {
        if (abort.signal.aborted) return;
        const message = coerceError(e).message;
        if (message !== lastError) opts.logger?.warn({ service: name, err: message }, `${name} failed; will retry`);
        lastError = message;
      }
    })());
  const schedule = (): void => {
    if (stopped) return;
    timer = clock.setTimeout(() => {
      timer = null;
      void once().then(schedule);
    }, everyMs);
  };
  return {
    name,
    start(signal) {
      signal.addEventListener('abort', () => abort.abort(signal.reason), { once: true });
      if (opts.runAtStart) void once().then(schedule);
      else schedule();
    },
    async stop() {
      stopped = true;
      abort.abort(new Error('stopping'));
      if (timer) clock.clearTimeout(timer);
      await running;
    },
    health: () => (lastError === null ? { ok: true } : { ok: false, detail: lastError }),
    runNow: () => running.then(once),
  };
}

/**
 * The services of one thread, started in the order added and stopped in reverse. A start
 * that throws stops the services already started and rethrows.
 */
export class Services {
  private readonly list: Service[] = [];
  private readonly abort = new AbortController();
  private started: Service[] = [];

  add<S extends Service>(service: S): S {
    this.list.push(service);
    return service;
  }

  /** A service that is already running (an engine opened to build the next ones): only stopped. */
  adopt(name: string, stop: () => Promise<void> | void): void {
    const service: Service = { name, start: () => undefined, stop: async () => stop(), health: () => ({ ok: true }) };
    this.list.push(service);
    this.started.push(service);
  }

  async start(): Promise<void> {
    for (const s of this.list) {
      if (this.started.includes(s)) continue;
      try {
        await s.start(this.abort.signal);
        this.started.push(s);
      } catch (e: unknown) {
        await this.stop();
        throw e;
      }
    }
  }

  /** Stops every started service, in the reverse of the order they were added. Must not throw. */
  async stop(): Promise<void> {
    this.abort.abort(new Error('stopping'));
    for (const s of [...this.list].reverse()) if (this.started.includes(s)) await s.stop().catch(() => undefined);
    this.started = [];
  }

  health(): Record<string, ServiceHealth> {
    return Object.fromEntries(this.list.map((s) => [s.name, s.health()]));
  }
}
