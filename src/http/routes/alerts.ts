import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { backtest } from '../../alerts/replay.js';
import { budgetOf } from '../../alerts/budget.js';
import { mergeable, type MinuteLookup } from '../../alerts/evaluate.js';
import { deleteRule, loadNotifyConfig, statesOf, turnOffAlerts, withBuiltins } from '../../alerts/evaluator.js';
import { mutedBy, parseReceiver, parseRouting, RECEIVER_NAME, routingJson } from '../../alerts/notify.js';
import { BUILTIN_RULES, burnSlo, lookback, parseRule, ruleJson, type Rule, type SloRule } from '../../alerts/rules.js';
import { INGEST_SETTLE_MS } from '../../obs/ingest-outcomes.js';
import { expireSilence, parseSilence, pastRetention, silenceJson, type Silence } from '../../alerts/silences.js';
import type { AlertSource } from '../../alerts/source.js';
import { ALERT_STATES, type AlertState, type Transition } from '../../alerts/state.js';
import { SluiceError } from '../../core/errors.js';
import { iso, parseQueryTime } from '../../core/time.js';
import type { Catalog } from '../../ports/catalog.js';
import { authenticate } from '../auth.js';

export interface AlertRouteOptions {
  catalog: Catalog;
  source: AlertSource;
  now?: () => number;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** The longest span a backtest replays. */
const MAX_BACKTEST = 7 * DAY;
/** Window ends a backtest may query one by one (measures that do not merge per minute). */
const MAX_QUERIED_ENDS = 1_440;

function time(v: unknown, field: string, fallback: string, now: number): number {
  const t = typeof (v ?? fallback) === 'string' ? parseQueryTime((v ?? fallback) as string, now) : null;
  if (t === null) throw new SluiceError('SLUICE_ERR_INVALID_BODY', `"${field}" must be an RFC 3339 timestamp, "now" or a relative time like "-7d"`, { field });
  return t;
}

/** What each body of the alerts API holds, for the answer to an empty one. */
const BODY_OF = {
  rule: 'a rule as JSON: {"kind": "slo", "objective": 0.999, "total": {…}, "bad": {…}}, {"kind": "threshold", …} or, for a built-in rule, {"kind": "builtin", "signal": …} (docs/alerts.md)',
  silence: 'a silence as JSON: {"matchers": [{"name": "alertname", "value": "…"}], "ends_at": "…", "comment": "…"}',
  receiver: 'a receiver as JSON: {"type": "webhook", "url": "https://…"}',
  routing: 'the routing as JSON: {"routes": [{"match": {…}, "receiver": "…"}], "default_receiver": "…"}',
} as const;

/** The request's JSON body; an empty one is refused naming what to send (not the ingest's events). */
async function bodyOf(request: FastifyRequest, what: keyof typeof BODY_OF): Promise<unknown> {
  if (request.rawBytes() === 0) throw new SluiceError('SLUICE_ERR_INVALID_JSON', `the body is empty; send ${BODY_OF[what]}`, { field: 'body' });
  return request.jsonBody();
}

/** A built-in rule at its defaults was never written: its times are null (they were 1970). */
function wireRule(name: string, rule: Rule, stored?: { createdAt: number; updatedAt: number }) {
  const at = (t: number) => (t > 0 ? iso(t) : null);
  return { name, ...ruleJson(rule), ...(stored ? { created_at: at(stored.createdAt), updated_at: at(stored.updatedAt) } : {}) };
}

export function wireTransition(t: Transition) {
  return { rule: t.rule, severity: t.severity, fingerprint: t.fingerprint, from: t.from, to: t.to, at: iso(t.at), explanation: t.verdict };
}

function wireAlert(a: AlertState, muted: { silencedBy: string[]; inhibitedBy: string[] }) {
  return {
    rule: a.rule,
    severity: a.severity,
    state: a.state,
    since: iso(a.since),
    evaluated_at: iso(a.evaluatedAt),
    labels: a.labels,
    annotations: a.annotations,
    fingerprint: a.fingerprint,
    silenced: muted.silencedBy.length > 0,
    silenced_by: muted.silencedBy,
    inhibited: muted.inhibitedBy.length > 0,
    inhibited_by: muted.inhibitedBy,
    explanation: a.verdict,
  };
}

/**
 * Aborts when the client goes away before its answer is sent (closed its connection, or cut at
 * limits.requestTimeoutMs): a backtest's remaining window queries are not asked for nobody.
 */
function abandoned(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) ac.abort(new SluiceError('SLUICE_ERR_SHUTTING_DOWN', 'the client went away before the backtest answered'));
  });
  return ac.signal;
}

/** A backtest's answer: every transition, and the firing periods per severity. */
function backtestAnswer(rule: Rule, from: number, to: number, transitions: Transition[]) {
  const periods: { severity: string; fired_at: string; resolved_at: string | null }[] = [];
  const open = new Map<string, number>();
  for (const t of transitions) {
    if (t.to === 'firing') open.set(t.severity, t.at);
    else if (t.from === 'firing') {
      periods.push({ severity: t.severity, fired_at: iso(open.get(t.severity)!), resolved_at: iso(t.at) });
      open.delete(t.severity);
    }
  }
  for (const [severity, at] of open) periods.push({ severity, fired_at: iso(at), resolved_at: null });
  return { rule: rule.name, from: iso(from), to: iso(to), fired: periods.length, periods, transitions: transitions.map(wireTransition) };
}

/**
 * Alerting (`/v1/alerts/…`): rules (admin key to change them), the current alerts and their
 * history (read key), error budgets, backtests, receivers, routing and silences. Every change
 * is audit-logged in the catalog with the change itself.
 */
export function alertRoutes(app: FastifyInstance, opts: AlertRouteOptions): void {
  const now = opts.now ?? Date.now;
  const store = opts.catalog.alerts;
  const name = (request: FastifyRequest) => (request.params as { name: string }).name;
  const query = (request: FastifyRequest) => request.query as Record<string, string | undefined>;

  const ruleOrThrow = async (tenant: string, n: string) => {
    const stored = (await store.getRule(tenant, n)) ?? withBuiltins(tenant, []).find((r) => r.name === n) ?? null;
    if (!stored) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no alert rule "${n}"; GET /v1/alerts/rules lists them`, { field: 'name' });
    return { stored, rule: parseRule(stored.name, stored.body, { stored: true }) };
  };

  app.put('/v1/alerts/rules/:name', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, 'admin');
    const rule = parseRule(name(request), await bodyOf(request, 'rule'));
    const { created, rule: stored } = await store.putRule(grant.tenant, rule.name, ruleJson(rule), grant.keyId);
    // Turned off: its pending and firing alerts end now ("rule turned off"), as a deleted rule's do.
    if (rule.kind === 'builtin' && !rule.enabled) await turnOffAlerts(store, grant.tenant, rule.name, now());
    return reply.code(created ? 201 : 200).send(wireRule(rule.name, rule, stored));
  });

  app.get('/v1/alerts/rules', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, ['read', 'admin']);
    const rules = withBuiltins(grant.tenant, await store.listRules(grant.tenant));
    return reply.send({ rules: rules.map((r) => wireRule(r.name, parseRule(r.name, r.body, { stored: true }), r.createdAt ? r : undefined)) });
  });

  app.get('/v1/alerts/rules/:name', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, ['read', 'admin']);
    const { stored, rule } = await ruleOrThrow(grant.tenant, name(request));
    return reply.send(wireRule(rule.name, rule, stored));
  });

  app.delete('/v1/alerts/rules/:name', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, 'admin');
    // Its pending and firing alerts end in the history ("rule deleted"); a notified one is sent as resolved.
    if (!(await deleteRule(store, grant.tenant, name(request), grant.keyId, now())).deleted) {
      if (Object.hasOwn(BUILTIN_RULES, name(request))) {
        // A built-in rule with its defaults has nothing stored to delete (a changed one goes back to its defaults).
        throw new SluiceError('SLUICE_ERR_CONFLICT', `"${name(request)}" is a built-in rule with its defaults: it cannot be deleted; turn it off with PUT /v1/alerts/rules/${name(request)} and {"kind": "builtin", "enabled": false, …} (sluice alerts rule put)`, { field: 'name' });
      }
      throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no alert rule "${name(request)}"; GET /v1/alerts/rules lists them (sluice alerts rules)`, { field: 'name' });
    }
    return reply.code(204).send();
  });

  app.get('/v1/alerts', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, ['read', 'admin']);
    const t = now();
    const states = [...statesOf(await store.states(grant.tenant)).values()].flatMap((m) => [...m.values()]);
    const config = await loadNotifyConfig(store, grant.tenant);
    config.paused = (await opts.catalog.settings(grant.tenant)).paused !== null;
    const firing = states.filter((s) => s.state === 'firing');
    const filter = query(request);
    if (filter.state && !(ALERT_STATES as readonly string[]).includes(filter.state)) {
      throw new SluiceError('SLUICE_ERR_INVALID_QUERY', `"state" must be one of ${ALERT_STATES.join(', ')}, got "${String(filter.state).slice(0, 40)}"`, { field: 'state' });
    }
    const alerts = states
      .filter((s) => (!filter.state || s.state === filter.state) && (!filter.rule || s.rule === filter.rule))
      .map((s) => wireAlert(s, mutedBy(s, firing, config, t)));
    // Per state, over the rule asked for (all rules without `rule`): not narrowed by `state`, so that each state's count stays a filter to click.
    const counted = filter.rule ? states.filter((s) => s.rule === filter.rule) : states;
    const counts = Object.fromEntries(ALERT_STATES.map((st) => [st, counted.filter((s) => s.state === st).length]));
    return reply.send({ alerts, counts });
  });

  app.get('/v1/alerts/history', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, ['read', 'admin']);
    const q = query(request);
    const t = now();
    const from = time(q.from, 'from', '-24h', t);
    const to = time(q.to, 'to', 'now', t);
    if (to < from) throw new SluiceError('SLUICE_ERR_INVALID_QUERY', `"to" (${iso(to)}) must not be before "from" (${iso(from)})`, { field: 'to' });
    const rule = q.rule === undefined || q.rule === '' ? undefined : q.rule;
    const rows = await store.history(grant.tenant, from, to + 1, 10_000, rule);
    return reply.send({ from: iso(from), to: iso(to), transitions: rows.map((r) => wireTransition(r.body as Transition)) });
  });

  app.get('/v1/alerts/rules/:name/budget', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, ['read', 'admin']);
    const { rule } = await ruleOrThrow(grant.tenant, name(request));
    const bucketParam = query(request).bucket ?? '1d';
    const bucket = bucketParam === '1h' ? HOUR : bucketParam === '1d' ? DAY : null;
    if (bucket === null) throw new SluiceError('SLUICE_ERR_INVALID_QUERY', '"bucket" must be "1h" or "1d"', { field: 'bucket' });
    if (rule.kind === 'threshold' || (rule.kind === 'builtin' && !rule.burn)) {
      const slos = Object.entries(BUILTIN_RULES).filter(([, r]) => 'objective' in r).map(([n]) => `"${n}"`).join(', ');
      throw new SluiceError('SLUICE_ERR_NOT_FOUND', `"${rule.name}" is a ${rule.kind === 'threshold' ? 'threshold' : 'built-in threshold'} rule: it has no error budget (SLOs have one, and so does the built-in burn-rate rule ${slos}); its state is in GET /v1/alerts (sluice alerts list)`, { field: 'name' });
    }
    let slo: SloRule;
    let total: MinuteLookup;
    let bad: MinuteLookup;
    let end: number;
    let step: number;
    const watermark = await opts.source.watermark(grant.tenant);
    if (rule.kind === 'builtin') {
      // The ingest minutes are counted on the wall clock, whole once settled: the period ends at the last settled minute.
      slo = burnSlo(rule);
      step = MINUTE;
      end = Math.floor((now() - INGEST_SETTLE_MS) / MINUTE) * MINUTE;
      const data = await opts.source.ruleData(grant.tenant, rule, end - slo.period, end);
      ({ total, bad } = data.slo!);
    } else {
      slo = rule;
      // Hourly counts over whole hours (a 30-day period is 720 of them), ending at the last whole hour the watermark passed.
      step = rule.period % HOUR === 0 ? HOUR : MINUTE;
      end = Math.floor(watermark / step) * step;
      const interval = step === HOUR ? '1h' : '1m';
      const counted = await opts.source.counts(grant.tenant, rule.total, end - rule.period, end, interval);
      total = counted;
      if (rule.bad) bad = await opts.source.counts(grant.tenant, rule.bad, end - rule.period, end, interval);
      else {
        const good = await opts.source.counts(grant.tenant, rule.good!, end - rule.period, end, interval);
        bad = new Map([...counted].map(([m, n]) => [m, Math.max(0, n - (good.get(m) ?? 0))]));
      }
    }
    const b = budgetOf(slo, total, bad, end, Math.max(bucket, step), step);
    return reply.send({
      rule: rule.name,
      objective: b.objective,
      period: { from: iso(b.from), to: iso(b.to) },
      // The current hour (for the built-in burn-rate rule, the minutes not yet settled) is counted once it is whole: said, not hidden.
      watermark: iso(watermark),
      not_counted: { from: iso(b.to), to: iso(rule.kind === 'builtin' ? Math.max(b.to, now()) : watermark) },
      total: b.total,
      bad: b.bad,
      allowed_bad: b.allowed,
      remaining: b.remaining,
      buckets: b.buckets.map((x) => ({ start: iso(x.start), total: x.total, bad: x.bad, burn_rate: x.burn_rate })),
    });
  });

  const runBacktest = async (tenant: string, rule: Rule, body: Record<string, unknown>, signal?: AbortSignal) => {
    if (rule.kind === 'builtin') throw new SluiceError('SLUICE_ERR_INVALID_QUERY', `"${rule.name}" watches the pipeline as it runs: it has no history to backtest`, { field: 'name' });
    const t = now();
    const watermark = Math.floor((await opts.source.watermark(tenant)) / MINUTE) * MINUTE;
    const from = Math.floor(time(body.from, 'from', '-7d', t) / MINUTE) * MINUTE;
    const to = Math.min(watermark, Math.floor(time(body.to, 'to', 'now', t) / MINUTE) * MINUTE);
    if (to <= from) throw new SluiceError('SLUICE_ERR_INVALID_BODY', `"to" (capped at the watermark, ${iso(watermark)}) must be after "from"`, { field: 'to' });
    if (to - from > MAX_BACKTEST) throw new SluiceError('SLUICE_ERR_QUERY_TOO_LARGE', 'a backtest spans at most 7d: shorten "from"…"to"', { field: 'from' });
    if (rule.kind === 'threshold' && !mergeable(rule) && (to - from) / MINUTE > MAX_QUERIED_ENDS) {
      throw new SluiceError('SLUICE_ERR_QUERY_TOO_LARGE', `"${rule.query.measure.name}" is computed by one query per minute: backtest at most 1d of it`, { field: 'from' });
    }
    const data = await opts.source.ruleData(tenant, rule, from - lookback(rule), to);
    const ends: number[] = [];
    for (let m = from + MINUTE; m <= to; m += MINUTE) ends.push(m);
    await data.prefetch?.(ends, signal);
    return backtestAnswer(rule, from, to, backtest(tenant, rule, data, from, to).transitions);
  };

  app.post('/v1/alerts/rules/:name/backtest', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, ['read', 'admin']);
    const { rule } = await ruleOrThrow(grant.tenant, name(request));
    const body = ((await request.jsonBody().catch(() => ({}))) ?? {}) as Record<string, unknown>;
    return reply.send(await runBacktest(grant.tenant, rule, body, abandoned(reply)));
  });

  app.post('/v1/alerts/backtest', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, ['read', 'admin']);
    const body = (await request.jsonBody()) as Record<string, unknown>;
    if (body === null || typeof body !== 'object' || body.rule === undefined) throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'send {"rule": {…a rule…}, "from": "-7d", "to": "now"}', { field: 'rule' });
    const r = body.rule as Record<string, unknown>;
    const { name: n, ...rest } = r;
    const rule = parseRule(typeof n === 'string' ? n : 'backtest', rest);
    return reply.send(await runBacktest(grant.tenant, rule, body, abandoned(reply)));
  });

  // ---- receivers, routing, silences -----------------------------------------------------

  app.put('/v1/alerts/receivers/:name', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, 'admin');
    if (!RECEIVER_NAME.test(name(request))) throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'a receiver name is 1-63 letters, digits, "_", "-" or "."', { field: 'name' });
    const receiver = parseReceiver(await bodyOf(request, 'receiver'));
    const { created } = await store.putObject(grant.tenant, 'receiver', name(request), receiver, grant.keyId);
    return reply.code(created ? 201 : 200).send({ name: name(request), ...receiver });
  });

  app.get('/v1/alerts/receivers', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, 'admin');
    return reply.send({ receivers: (await store.listObjects(grant.tenant, 'receiver')).map((r) => ({ name: r.name, ...(r.body as object) })) });
  });

  app.get('/v1/alerts/receivers/:name', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, 'admin');
    const r = await store.getObject(grant.tenant, 'receiver', name(request));
    if (!r) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no receiver "${name(request)}"`, { field: 'name' });
    return reply.send({ name: name(request), ...(r as object) });
  });

  app.delete('/v1/alerts/receivers/:name', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, 'admin');
    // A receiver the routing sends to cannot go: its alerts would silently not be sent.
    const routing = (await store.getObject(grant.tenant, 'routing', 'routing')) as ReturnType<typeof parseRouting> | null;
    if (routing) {
      const users = [
        ...routing.routes.flatMap((r, i) => (r.receiver === name(request) ? [`routes[${i}] (match ${JSON.stringify(r.match)})`] : [])),
        ...(routing.default_receiver === name(request) ? ['default_receiver'] : []),
      ];
      if (users.length > 0) {
        throw new SluiceError(
          'SLUICE_ERR_CONFLICT',
          `receiver "${name(request)}" is used by the routing: ${users.join(', ')}; send those alerts elsewhere first (PUT /v1/alerts/routing), then delete it`,
          { field: 'name' },
        );
      }
    }
    if (!(await store.deleteObject(grant.tenant, 'receiver', name(request), grant.keyId))) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no receiver "${name(request)}"`, { field: 'name' });
    return reply.code(204).send();
  });

  app.put('/v1/alerts/routing', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, 'admin');
    const routing = parseRouting(await bodyOf(request, 'routing'));
    const receivers = new Set((await store.listObjects(grant.tenant, 'receiver')).map((r) => r.name));
    for (const r of [...routing.routes.map((x) => x.receiver), ...(routing.default_receiver ? [routing.default_receiver] : [])]) {
      if (!receivers.has(r)) throw new SluiceError('SLUICE_ERR_INVALID_BODY', `no receiver "${r}": create it first with PUT /v1/alerts/receivers/${r}`, { field: 'routes' });
    }
    await store.putObject(grant.tenant, 'routing', 'routing', routing, grant.keyId);
    return reply.send(routingJson(routing));
  });

  app.get('/v1/alerts/routing', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, 'admin');
    const r = await store.getObject(grant.tenant, 'routing', 'routing');
    return reply.send(routingJson((r as ReturnType<typeof parseRouting> | null) ?? parseRouting({})));
  });

  app.post('/v1/alerts/silences', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, 'admin');
    const s = parseSilence(await bodyOf(request, 'silence'), grant.keyId, now());
    await store.putObject(grant.tenant, 'silence', s.id, s, grant.keyId);
    return reply.code(201).send(silenceJson(s, now()));
  });

  app.get('/v1/alerts/silences', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, ['read', 'admin']);
    const t = now();
    const all = (await store.listObjects(grant.tenant, 'silence')).map((s) => s.body as Silence);
    // Expired ones stay listed (state "expired") for SILENCE_RETENTION_MS, then are deleted.
    for (const s of all.filter((x) => pastRetention(x, t))) await store.deleteObject(grant.tenant, 'silence', s.id, 'retention');
    return reply.send({ silences: all.filter((s) => !pastRetention(s, t)).map((s) => silenceJson(s, t)) });
  });

  // Expires a silence (Alertmanager's DELETE /api/v2/silence/{id}): it ends now and stays listed as expired.
  app.delete('/v1/alerts/silences/:id', async (request, reply) => {
    const grant = await authenticate(opts.catalog, request, 'admin');
    const id = (request.params as { id: string }).id;
    const s = (await store.getObject(grant.tenant, 'silence', id)) as Silence | null;
    if (!s) throw new SluiceError('SLUICE_ERR_NOT_FOUND', `no silence "${id}"`, { field: 'id' });
    const expired = expireSilence(s, now());
    if (expired !== s) await store.putObject(grant.tenant, 'silence', id, expired, grant.keyId);
    return reply.code(204).send();
  });
}
