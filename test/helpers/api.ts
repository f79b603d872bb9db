/**
 * One request, tried again once when the connection turned out closed before any answer
 * (undici's UND_ERR_SOCKET, "other side closed") and the request may be repeated (a GET, or
 * events, whose idempotency keys make a resend count once). Tests that run the CLI with
 * spawnSync block their event loop for seconds on a loaded machine; undici's timer that
 * retires an idle keep-alive connection before the server's keepAliveTimeout (10 s) cannot run
 * meanwhile, and the next request goes out on a socket the server has just closed.
 */
async function request(base: string, key: string, method: string, path: string, body?: unknown): Promise<Response> {
  const once = () =>
    fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  try {
    return await once();
  } catch (e: unknown) {
    const repeatable = method === 'GET' || (method === 'POST' && path === '/v1/events');
    if (!repeatable || (e as { cause?: { code?: string } }).cause?.code !== 'UND_ERR_SOCKET') throw e;
    return once();
  }
}

/**
 * The tests' one way to call a running server's HTTP API: the key as a Bearer token, the
 * body (if any) as JSON.
 */
export async function apiCall(base: string, key: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, any> | null }> {
  const r = await request(base, key, method, path, body);
  const text = await r.text();
  return { status: r.status, body: text ? (JSON.parse(text) as Record<string, any>) : null };
}

/** A call that must succeed (2xx): throws with the method, path, status and answer otherwise; answers the parsed body (undefined when empty, as for 204). */
export async function apiOk<T>(base: string, key: string, method: string, path: string, body?: unknown): Promise<T> {
  const r = await request(base, key, method, path, body);
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

/** A rollout's share as the server's `/metrics` reports it (`sluice_rollout_share`), or undefined before the controller has. */
export async function rolloutShare(base: string, id: string): Promise<string | undefined> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return text.match(new RegExp(`sluice_rollout_share\\{[^}]*rollout="${id}"[^}]*\\} (\\d+)`))?.[1];
}
