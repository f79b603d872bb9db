/**
 * Calls `fn` every `stepMs` until `ok` holds of its answer or `timeoutMs` has passed, and
 * answers the last answer either way: the caller's `expect` on it then shows what it was.
 */
export async function poll<T>(fn: () => Promise<T> | T, ok: (t: T) => boolean, timeoutMs = 30_000, stepMs = 200): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const t = await fn();
    if (ok(t) || Date.now() > end) return t;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
