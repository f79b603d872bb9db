import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { allowed, api, ApiError, PAGES, signIn, signOut, storedKey, type Who } from './api.js';
import { navigate, onLink, useRoute } from './router.js';
import { Overview } from './pages/overview.js';
import { Explore } from './pages/explore.js';
import { Live } from './pages/live.js';
import { EventPage } from './pages/event.js';
import { DeadLetters } from './pages/dlq.js';
import { Schemas } from './pages/schemas.js';
import { Views } from './pages/views.js';
import { Alerts } from './pages/alerts.js';
import { Settings } from './pages/settings.js';
import { Rollouts } from './pages/rollouts.js';
import './style.css';

function SignIn(props: { onSignedIn: (who: Who) => void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const who = await api<Who>('/v1/whoami', { key: key.trim() });
      if (who.scope === 'write') throw new ApiError('this is a write key, for sending events; sign in with a read, admin or schema key', 'SLUICE_ERR_FORBIDDEN', 403);
      signIn(key.trim());
      props.onSignedIn(who);
    } catch (err: unknown) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <h1>sluice</h1>
      <form onSubmit={submit}>
        <label for="key">API key (read, admin or schema)</label>
        <input id="key" type="password" autocomplete="off" spellcheck={false} data-testid="signin-key" value={key} onInput={(e) => setKey((e.target as HTMLInputElement).value)} placeholder="sluice_r_…" />
        <button type="submit" data-testid="signin-submit" disabled={busy || !key.trim()}>
          Sign in
        </button>
        <p class="hint">The key is kept in this tab only (sessionStorage) and forgotten when the tab closes or you sign out.</p>
        {error && (
          <p class="error" role="alert" data-testid="signin-error">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}

function Page(props: { path: string; who: Who }) {
  const { path, who } = props;
  if (!allowed(path, who.scope)) {
    return (
      <p class="error" data-testid="forbidden">
        This page is not available to a {who.scope} key.
      </p>
    );
  }
  if (path === '/ui/' || path === '/ui') return <Overview who={who} />;
  if (path === '/ui/explore') return <Explore />;
  if (path === '/ui/live') return <Live />;
  if (path.startsWith('/ui/events/')) return <EventPage id={decodeURIComponent(path.slice('/ui/events/'.length))} />;
  if (path === '/ui/dlq') return <DeadLetters />;
  if (path === '/ui/schemas') return <Schemas who={who} />;
  if (path === '/ui/views') return <Views who={who} />;
  if (path === '/ui/alerts') return <Alerts who={who} />;
  if (path === '/ui/rollouts') return <Rollouts />;
  if (path === '/ui/settings') return <Settings who={who} />;
  return <p class="error">No such page. Choose one above.</p>;
}

function App() {
  const route = useRoute();
  const [who, setWho] = useState<Who | null>(null);
  const [checking, setChecking] = useState(storedKey() !== null);
  useEffect(() => {
    if (!storedKey()) return;
    api<Who>('/v1/whoami').then(
      (w) => {
        setWho(w);
        setChecking(false);
      },
      () => {
        signOut();
        setChecking(false);
      },
    );
    const expired = () => {
      signOut();
      setWho(null);
    };
    window.addEventListener('sluice:unauthorized', expired);
    return () => window.removeEventListener('sluice:unauthorized', expired);
  }, []);
  if (checking) return <p class="loading">Loading…</p>;
  if (!who) return <SignIn onSignedIn={setWho} />;
  const first = PAGES.find((p) => p.scopes.includes(who.scope))!;
  if ((route.path === '/ui/' || route.path === '/ui') && !allowed('/ui/', who.scope)) {
    queueMicrotask(() => navigate(first.path, true));
  }
  return (
    <div class="shell">
      <header>
        <strong class="brand">sluice</strong>
        <nav>
          {PAGES.filter((p) => p.scopes.includes(who.scope)).map((p) => (
            <a href={p.path} onClick={onLink} class={route.path === p.path || (p.path !== '/ui/' && route.path.startsWith(p.path)) ? 'active' : ''}>
              {p.title}
            </a>
          ))}
        </nav>
        <span class="who" data-testid="who">
          {who.tenant} · {who.scope}
          {who.team ? ` (${who.team})` : ''}
        </span>
        <button
          type="button"
          data-testid="signout"
          onClick={() => {
            signOut();
            setWho(null);
            navigate('/ui/');
          }}
        >
          Sign out
        </button>
      </header>
      <main>
        <Page path={route.path} who={who} />
      </main>
    </div>
  );
}

render(<App />, document.getElementById('app')!);
