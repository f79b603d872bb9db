#!/usr/bin/env node
import { CommanderError } from 'commander';
import { cliCommand } from '../config/load.js';
import { coerceError, SluiceError } from '../core/errors.js';
import { flagFor } from './field-flags.js';
import { HttpError, UnreachableError } from './http-client.js';
import { buildProgram } from './program.js';

/** What to do about an HTTP error the server answered, beside its own message. */
function hint(e: HttpError): string {
  const field = (e.body as { field?: unknown } | null)?.field;
  if (typeof field === 'string') {
    const flag = flagFor(program, process.argv.slice(2), field);
    if (flag) return ` (on the command line: ${flag})`;
  }
  if (e.status === 401) return ` (check --key or SLUICE_KEY: the key is unknown or revoked; "${cliCommand()} key create TENANT --scope …" issues another)`;
  if (e.status === 403) return ' (check --key or SLUICE_KEY: send needs a write key, query and alerts a read key; dlq, backfill, pipeline, rollout and alert changes an admin key; schema changes an admin key or a schema key of the team that owns the type)';
  return '';
}

/**
 * One line on stderr for every error a user can cause (a usage mistake, a missing file, a
 * server that is not there, a wrong key); the stack only with SLUICE_LOG_LEVEL=debug.
 * Exit codes: 0 ok, 1 the command failed, 2 a usage or configuration mistake.
 */
function report(e: unknown): number {
  if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2; // commander printed it
  const err = coerceError(e);
  if (err instanceof HttpError) process.stderr.write(`sluice: ${err.message}${hint(err)}\n`);
  else if (err instanceof UnreachableError || err instanceof SluiceError) process.stderr.write(`sluice: ${err.message}\n`);
  else process.stderr.write(`sluice: ${process.env.SLUICE_LOG_LEVEL === 'debug' ? (err.stack ?? err.message) : err.message}\n`);
  return err instanceof SluiceError && err.code === 'SLUICE_ERR_CONFIG' ? 2 : 1;
}

/**
 * Exits once stdout and stderr have written everything: a pipe takes 64 KiB at once, and
 * process.exit() drops what is still queued (a `--json` answer piped into jq was cut there).
 */
function exit(code: number): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

let code = 0;
const program = buildProgram((c) => (code = c));
program
  .parseAsync(process.argv.slice(2), { from: 'user' })
  .then(
    () => exit(code),
    (e: unknown) => exit(report(e)),
  );
