import { SluiceError } from '../core/errors.js';
import type { Target } from './admin.js';
import { callJson } from './http-client.js';
import { readJsonFile } from './json-file.js';

/**
 * `sluice alerts …`: one command per call of the alerts API (docs/alerts.md), with a
 * human summary by default and the API's JSON with --json.
 */

export const ALERTS_USAGE = `  sluice alerts [list] [--state firing] [--rule NAME]      current alerts, why, silenced or inhibited
  sluice alerts rules | rule show|delete NAME | rule put NAME FILE.json
  sluice alerts history [--from -24h] [--to now] [--rule NAME]
  sluice alerts budget NAME [--bucket 1d|1h]
  sluice alerts backtest NAME [--from -7d] [--to now]  |  sluice alerts backtest --file RULE.json [--from …] [--to …]
  sluice alerts receivers | receiver show|delete NAME | receiver put NAME FILE.json
  sluice alerts routing [put FILE.json]
  sluice alerts silences | silence add FILE.json | silence delete ID
      Alert rules (SLOs, thresholds, built-ins), their state and history, error budgets,
      backtests over stored history, receivers, routing and silences (changes: admin key).`;

function usage(message: string): never {
  throw new SluiceError('SLUICE_ERR_CONFIG', `${message}\n\n${ALERTS_USAGE}`);
}

function readJson(file: string | undefined, what: string): unknown {
  return readJsonFile(file, `name the ${what} file (JSON; "-" reads stdin)\n\n${ALERTS_USAGE}`);
}

function qs(q: Record<string, string | undefined>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined) p.set(k, v);
  const s = p.toString();
  return s ? `?${s}` : '';
}

const enc = encodeURIComponent;

/** The API's JSON, printed as it comes (the API is the contract; docs/alerts.md). */
type Any = any;

/** "dead_letter_ratio over 1h = 0.025 (5 of 200 events; fires when gt 0.01)", "freshness now = 12 (…)". */
function valueLine(v: Any): string {
  const counts = v.window === 'now' || v.events === undefined ? '' : v.bad === undefined ? `${v.events} events; ` : `${v.bad} of ${v.events} events; `;
  return `${v.measure} ${v.window === 'now' ? 'now' : `over ${v.window}`} = ${v.value ?? '-'} (${counts}fires when ${v.op} ${v.threshold})`;
}

/** `sluice alerts rule put FILE.json` (the name left out): the usage, not "name the rule file". */
function putUsage(what: 'rule' | 'receiver', name: string): string {
  const looksLikeFile = /\.json$|[/\\]|^-$/.test(name);
  return `usage: sluice alerts ${what} put NAME FILE.json${looksLikeFile ? ` ("${name}" looks like the file: name the ${what} first)` : ` (name the file of the ${what}, JSON; "-" reads stdin)`}`;
}

/**
 * What a budget leaves out, per kind of rule: an SLO counts whole hours (the hour up to the
 * watermark once whole); the built-in burn-rate rule counts minutes of receipt once every
 * ingest process wrote them (the last minutes, not settled yet).
 */
function notCounted(r: Any): string {
  if (!r.not_counted || r.not_counted.from === r.not_counted.to) return '';
  if (String(r.rule).startsWith('sluice_')) return ` (the minutes since ${r.not_counted.from}, not settled yet, are counted once every ingest process has written them)`;
  return ` (the hour up to the watermark, ${r.watermark}, is counted once whole)`;
}

function alertLine(a: Any): string {
  const muted = a.silenced ? ' (silenced)' : a.inhibited ? ' (inhibited)' : '';
  const why = a.explanation?.windows?.length
    ? a.explanation.windows.map((w: Any) => `${w.window} ${w.bad}/${w.total} burn ${w.burn_rate === null ? '-' : Number(w.burn_rate).toFixed(2)} vs ${w.threshold}`).join(', ')
    : a.explanation?.value
      ? valueLine(a.explanation.value)
      : '';
  return `${a.state.padEnd(17)} ${a.severity.padEnd(6)} ${a.rule}${muted}  since ${a.since}${why ? `  [${why}]` : ''}`;
}

export async function alertsCommand(t: Target, sub: string | undefined, args: string[], flags: Record<string, string | undefined>): Promise<number> {
  const base = t.url.replace(/\/$/, '');
  const call = async (method: string, path: string, payload?: unknown): Promise<Any> => (await callJson(method, `${base}${path}`, t.key, payload, { maxAttempts: 3 })).body;
  const print = (value: unknown, human: () => string): number => {
    t.out.write((t.json ? JSON.stringify(value, null, 2) : human()) + '\n');
    return 0;
  };
  const [verb, name, file] = args;
  switch (sub ?? 'list') {
    case 'list': {
      const r = await call('GET', `/v1/alerts${qs({ state: flags.state, rule: flags.rule })}`);
      return print(r, () => [...r.alerts.map(alertLine), Object.entries(r.counts).map(([k, v]) => `${k} ${v}`).join(', ')].join('\n'));
    }
    case 'rules': {
      const r = await call('GET', '/v1/alerts/rules');
      return print(r, () => r.rules.map((x: Any) => `${x.name.padEnd(30)} ${x.kind}${x.kind === 'slo' ? ` ${x.objective} over ${x.period}` : ''}${x.enabled === false ? ' (off)' : ''}`).join('\n') || 'no rules');
    }
    case 'rule': {
      if (!name) usage('name the rule');
      if (verb === 'show') {
        const r = await call('GET', `/v1/alerts/rules/${enc(name)}`);
        return print(r, () => JSON.stringify(r, null, 2));
      }
      if (verb === 'put') {
        if (!file) usage(putUsage('rule', name));
        const r = await call('PUT', `/v1/alerts/rules/${enc(name)}`, readJson(file, 'rule'));
        return print(r, () => `rule "${name}" saved`);
      }
      if (verb === 'delete') {
        await call('DELETE', `/v1/alerts/rules/${enc(name)}`);
        return print({ deleted: name }, () => `rule "${name}" deleted`);
      }
      return usage(`unknown command "alerts rule ${verb ?? ''}"`);
    }
    case 'history': {
      const r = await call('GET', `/v1/alerts/history${qs({ from: flags.from, to: flags.to, rule: flags.rule })}`);
      return print(r, () => r.transitions.map((x: Any) => `${x.at}  ${x.rule} ${x.severity}: ${x.from} → ${x.to}${x.explanation?.reason ? ` (${x.explanation.reason})` : ''}`).join('\n') || 'no transitions');
    }
    case 'budget': {
      const rule = args[0];
      if (!rule) usage('name the SLO: sluice alerts budget NAME');
      const r = await call('GET', `/v1/alerts/rules/${enc(rule)}/budget${qs({ bucket: flags.bucket })}`);
      return print(r, () =>
        [
          `${r.rule}: objective ${r.objective}, ${r.period.from} → ${r.period.to}${notCounted(r)}`,
          `${r.bad} bad of ${r.total}; allowed ${Number(Number(r.allowed_bad).toPrecision(3))}; remaining ${r.remaining === null ? '-' : `${(r.remaining * 100).toFixed(1)} %`}`,
        ].join('\n'),
      );
    }
    case 'backtest': {
      const body = { from: flags.from, to: flags.to };
      const r = flags.file ? await call('POST', '/v1/alerts/backtest', { ...body, rule: readJson(flags.file, 'rule') }) : await call('POST', `/v1/alerts/rules/${enc(args[0] ?? usage('name the rule, or --file RULE.json'))}/backtest`, body);
      return print(r, () => [`${r.rule}: ${r.fired} firing period(s) between ${r.from} and ${r.to}`, ...r.periods.map((p: Any) => `  ${p.severity}: ${p.fired_at} → ${p.resolved_at ?? 'still firing'}`)].join('\n'));
    }
    case 'receivers': {
      const r = await call('GET', '/v1/alerts/receivers');
      return print(r, () => r.receivers.map((x: Any) => `${x.name.padEnd(20)} ${x.type} ${x.url}`).join('\n') || 'no receivers');
    }
    case 'receiver': {
      if (!name) usage('name the receiver');
      if (verb === 'show') return print(await call('GET', `/v1/alerts/receivers/${enc(name)}`), () => '');
      if (verb === 'put' && !file) usage(putUsage('receiver', name));
      if (verb === 'put') return print(await call('PUT', `/v1/alerts/receivers/${enc(name)}`, readJson(file, 'receiver')), () => `receiver "${name}" saved`);
      if (verb === 'delete') {
        await call('DELETE', `/v1/alerts/receivers/${enc(name)}`);
        return print({ deleted: name }, () => `receiver "${name}" deleted`);
      }
      return usage(`unknown command "alerts receiver ${verb ?? ''}"`);
    }
    case 'routing': {
      const r = args[0] === 'put' ? await call('PUT', '/v1/alerts/routing', readJson(args[1], 'routing')) : await call('GET', '/v1/alerts/routing');
      return print(r, () => JSON.stringify(r, null, 2));
    }
    case 'silences': {
      const r = await call('GET', '/v1/alerts/silences');
      return print(r, () => r.silences.map((s: Any) => `${s.id}  ${s.status.state.padEnd(8)} ${s.matchers.map((m: Any) => `${m.name}${m.isEqual ? '' : '!'}${m.isRegex ? '=~' : '='}${m.value}`).join(',')}  ${s.comment}`).join('\n') || 'no silences');
    }
    case 'silence': {
      if (verb === 'add') {
        const r = await call('POST', '/v1/alerts/silences', readJson(name, 'silence'));
        return print(r, () => `silence ${r.id} added`);
      }
      if (verb === 'delete') {
        if (!name) usage('name the silence id');
        await call('DELETE', `/v1/alerts/silences/${enc(name)}`);
        // Expired as Alertmanager's are: listed as `expired` until its retention (120 h) ends.
        return print({ expired: name }, () => `silence ${name} expired (listed as expired for 120 h)`);
      }
      return usage(`unknown command "alerts silence ${verb ?? ''}"`);
    }
    default:
      return usage(`unknown command "alerts ${sub}"`);
  }
}
