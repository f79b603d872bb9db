import { spawnSync } from 'node:child_process';
import { expect, it } from 'vitest';
import { assertBuilt, CLI } from '../helpers/server.js';
import { NATS_URL, natsAvailable, POSTGRES_URL, postgresAvailable } from '../helpers/services.js';

const ready = (await natsAvailable()) && (await postgresAvailable());

function doctor(...args: string[]): { status: number | null; stdout: string } {
  assertBuilt();
  const r = spawnSync(process.execPath, [CLI, 'doctor', ...args], { encoding: 'utf8', env: { ...process.env, SLUICE_LOG_LEVEL: 'warn' } });
  return { status: r.status, stdout: r.stdout };
}

it.skipIf(!ready)('cli.doctor-checks-the-backends-and-says-what-to-change', () => {
  const good = doctor('--log', NATS_URL, '--store', `${POSTGRES_URL}?schema=sluice_doctor_never_created`, '--json');
  expect(good.status).toBe(0);
  const { findings } = JSON.parse(good.stdout) as { findings: { level: string; what: string; detail: string }[] };
  expect(findings.find((f) => f.what === 'log')).toMatchObject({ level: 'ok' });
  expect(findings.find((f) => f.what === 'store')).toMatchObject({ level: 'ok' });
  // The durability of the log is always reported: either the server cannot fsync every write, or sluice cannot see it.
  expect(findings.find((f) => f.what === 'log durability')?.detail).toMatch(/sync_interval/);
  const bad = doctor('--log', 'nats://127.0.0.1:1', '--store', 'postgres://postgres@127.0.0.1:1/test');
  expect(bad.status).toBe(1);
  expect(bad.stdout).toMatch(/FAIL {2}log: cannot reach NATS at 127\.0\.0\.1:1/);
  expect(bad.stdout).toMatch(/FAIL {2}store: cannot reach PostgreSQL/);
});

it('cli.doctor-says-when-the-data-directory-holds-nothing-and-how-to-create-a-missing-database', async () => {
  const { tmpDir } = await import('../helpers/tmp.js');
  const missing = `${tmpDir('sluice-doctor-')}/not-there`;
  const empty = doctor('--data-dir', missing, '--json');
  const { findings } = JSON.parse(empty.stdout) as { findings: { level: string; what: string; detail: string }[] };
  for (const what of ['log', 'store', 'catalog']) {
    expect(findings.find((f) => f.what === what), what).toMatchObject({ level: 'warn', detail: expect.stringContaining(`no data directory at ${missing}`) });
  }
  if (!(await postgresAvailable())) return;
  const u = new URL(POSTGRES_URL);
  const nodb = doctor('--data-dir', missing, '--store', `${u.protocol}//${u.username}@${u.host}/sluice_doctor_no_such_db`);
  expect(nodb.status).toBe(1);
  expect(nodb.stdout).toContain(`Create the database first (createdb -h ${u.hostname} -p ${u.port || '5432'} -U ${u.username} sluice_doctor_no_such_db)`);
});
