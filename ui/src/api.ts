/**
 * The console's only way to the API: same origin, the key from sessionStorage as a Bearer
 * token. The key is never put in localStorage, a cookie or a URL; closing the tab forgets it.
 */
const KEY = 'sluice.key';

export type Scope = 'write' | 'read' | 'admin' | 'schema';
export interface Who {
  tenant: string;
  scope: Scope;
  key_id: string;
  team: string | null;
}

export function storedKey(): string | null {
  return sessionStorage.getItem(KEY);
}

export function signIn(key: string): void {
  sessionStorage.setItem(KEY, key);
}

export function signOut(): void {
  sessionStorage.removeItem(KEY);
}

/** An error answer of the API: its code and message, shown to the user as text. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly status: number,
  ) {
    super(message);
  }
}

function headers(extra: Record<string, string> = {}, key = storedKey()): Record<string, string> {
  return { ...(key ? { authorization: `Bearer ${key}` } : {}), ...extra };
}

async function fail(r: Response): Promise<never> {
  let code = `HTTP_${r.status}`;
  let message = r.statusText || `the server answered ${r.status}`;
  try {
    // The API's one error format: { statusCode, code, error, message, field? }.
    const body = (await r.json()) as { code?: string; message?: string };
    code = body.code ?? code;
    message = body.message ?? message;
  } catch {
    // Not JSON: keep the status line.
  }
  if (r.status === 401) window.dispatchEvent(new CustomEvent('sluice:unauthorized'));
  throw new ApiError(message, code, r.status);
}

export async function api<T>(path: string, init: { method?: string; body?: unknown; key?: string; signal?: AbortSignal } = {}): Promise<T> {
  const r = await fetch(path, {
    method: init.method ?? 'GET',
    headers: headers(init.body === undefined ? {} : { 'content-type': 'application/json' }, init.key ?? storedKey()),
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    ...(init.signal ? { signal: init.signal } : {}),
    cache: 'no-store',
    credentials: 'omit',
  });
  if (!r.ok) return fail(r);
  if (r.status === 204) return undefined as T;
  return (await r.json()) as T;
}

/** The answer as text in another format (CSV). */
export async function apiText(path: string, init: { method: string; body: unknown; accept: string }): Promise<string> {
  const r = await fetch(path, { method: init.method, headers: headers({ 'content-type': 'application/json', accept: init.accept }), body: JSON.stringify(init.body), cache: 'no-store', credentials: 'omit' });
  if (!r.ok) return fail(r);
  return r.text();
}

/**
 * Server-Sent Events read with fetch (EventSource cannot send an Authorization header, and
 * the key must not go in the URL). Calls `onEvent` with each `data` line parsed as JSON.
 */
export async function stream(path: string, onEvent: (data: unknown) => void, signal: AbortSignal): Promise<void> {
  const r = await fetch(path, { headers: headers({ accept: 'text/event-stream' }), signal, cache: 'no-store', credentials: 'omit' });
  if (!r.ok || !r.body) return fail(r);
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).trimStart())
        .join('\n');
      if (!data) continue;
      try {
        onEvent(JSON.parse(data));
      } catch {
        // A frame that is not JSON is not an event.
      }
    }
  }
}

/** The pages a scope may open (the API refuses the rest anyway). */
export const PAGES: { path: string; title: string; scopes: Scope[] }[] = [
  { path: '/ui/', title: 'Overview', scopes: ['read', 'admin'] },
  { path: '/ui/explore', title: 'Explore', scopes: ['read', 'admin'] },
  { path: '/ui/live', title: 'Live', scopes: ['read', 'admin'] },
  { path: '/ui/dlq', title: 'Dead letters', scopes: ['admin'] },
  { path: '/ui/schemas', title: 'Schemas', scopes: ['admin', 'schema'] },
  { path: '/ui/views', title: 'Views', scopes: ['read', 'admin'] },
  { path: '/ui/alerts', title: 'Alerts', scopes: ['read', 'admin'] },
  { path: '/ui/rollouts', title: 'Rollouts', scopes: ['admin'] },
  { path: '/ui/settings', title: 'Settings', scopes: ['admin'] },
];

export function allowed(path: string, scope: Scope): boolean {
  if (path.startsWith('/ui/events/')) return scope === 'read' || scope === 'admin';
  const page = PAGES.find((p) => p.path === path || (p.path !== '/ui/' && path.startsWith(p.path)));
  return page ? page.scopes.includes(scope) : false;
}
