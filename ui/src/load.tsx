import { useCallback, useEffect, useState } from 'preact/hooks';

/** Loads data for a page; reloads when `deps` change. Errors are kept as text to show. */
export function useLoad<T>(fn: (signal: AbortSignal) => Promise<T>, deps: unknown[]): { data: T | null; error: string | null; loading: boolean; reload: () => void } {
  const [state, setState] = useState<{ data: T | null; error: string | null; loading: boolean }>({ data: null, error: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const ctl = new AbortController();
    setState((s) => ({ ...s, loading: true, error: null }));
    fn(ctl.signal).then(
      (data) => !ctl.signal.aborted && setState({ data, error: null, loading: false }),
      (e: unknown) => !ctl.signal.aborted && setState({ data: null, error: e instanceof Error ? e.message : String(e), loading: false }),
    );
    return () => ctl.abort();
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/**
 * A page's actions (a button's API call): `act(fn)` runs one and keeps its error as text to
 * show, clearing the last one first.
 */
export function useAction(): { error: string | null; act: (fn: () => Promise<void>) => Promise<void> } {
  const [error, setError] = useState<string | null>(null);
  const act = useCallback(async (fn: () => Promise<void>) => {
    setError(null);
    try {
      await fn();
    } catch (e: unknown) {
      setError(e instanceof Error ? e.message : String(e));
    }
  }, []);
  return { error, act };
}

/** An error shown as text (API messages can quote event data). */
export function ErrorBox(props: { error: string | null }) {
  return props.error ? (
    <p class="error" role="alert" data-testid="error">
      {props.error}
    </p>
  ) : null;
}
