/**
 * Readiness: whether the pipeline is making progress, part by part, and which part is not.
 *
 * - log: it can be read and its last append succeeded (a full disk fails appends);
 * - store: it answers and its last commit succeeded (out of memory, I/O errors fail commits);
 * - catalog: it answers;
 * - freshness: the oldest event not yet processed is at most `boundSeconds` old
 *   (`obs.readyFreshnessSeconds`; 0 turns the check off): workers keep up.
 *
 * Pure: the HTTP route gathers the checks and sends the answer, 200 when ready, else 503.
 */
export interface Check {
  ok: boolean;
  detail?: string;
}

export interface Readiness {
  status: 'ready' | 'degraded';
  /** The names of the checks that fail, in a fixed order (empty when ready). */
  failing: string[];
  checks: { log: Check; store: Check; catalog: Check; freshness: Check & { seconds: number; bound_seconds: number } };
}

export function readiness(parts: { log: Check; store: Check; catalog: Check }, freshnessSeconds: number, boundSeconds: number): Readiness {
  const fresh = boundSeconds === 0 || freshnessSeconds <= boundSeconds;
  const freshness = {
    ok: fresh,
    seconds: Math.round(freshnessSeconds * 10) / 10,
    bound_seconds: boundSeconds,
    ...(fresh ? {} : { detail: `the oldest unprocessed event is ${Math.round(freshnessSeconds)} s old, over the ${boundSeconds} s bound (obs.readyFreshnessSeconds): workers are not keeping up or are stuck` }),
  };
  const checks = { ...parts, freshness };
  const failing = Object.entries(checks).filter(([, c]) => !c.ok).map(([name]) => name);
  return { status: failing.length === 0 ? 'ready' : 'degraded', failing, checks };
}
