import { useEffect, useState } from 'preact/hooks';

/**
 * Every page's state lives in its URL (path and query string), so that a view can be
 * bookmarked and shared: pages read it with useRoute and change it with navigate.
 */
export interface Route {
  path: string;
  params: URLSearchParams;
}

function current(): Route {
  return { path: location.pathname, params: new URLSearchParams(location.search) };
}

export function navigate(url: string, replace = false): void {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  window.dispatchEvent(new Event('sluice:navigate'));
}

/** Changes some query parameters of the current page (removes those set to null or ""). */
export function setParams(changes: Record<string, string | null>, replace = false): void {
  const p = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === '') p.delete(k);
    else p.set(k, v);
  }
  const q = p.toString();
  navigate(`${location.pathname}${q ? `?${q}` : ''}`, replace);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const update = () => setRoute(current());
    window.addEventListener('popstate', update);
    window.addEventListener('sluice:navigate', update);
    return () => {
      window.removeEventListener('popstate', update);
      window.removeEventListener('sluice:navigate', update);
    };
  }, []);
  return route;
}

/** A link inside the console: navigates without reloading. `href` is always one of ours. */
export function onLink(e: MouseEvent): void {
  const a = (e.currentTarget as HTMLAnchorElement | null) ?? null;
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
  e.preventDefault();
  navigate(a.getAttribute('href')!);
}
