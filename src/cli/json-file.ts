import fs from 'node:fs';
import { SluiceError } from '../core/errors.js';

/**
 * A JSON document the user named on the command line (`-` reads standard input). Throws a
 * SluiceError (SLUICE_ERR_CONFIG, one line for the user) when no file is named (`missing`
 * says what to do), when it cannot be read, or when it is not JSON.
 */
export function readJsonFile(file: string | undefined, missing: string): unknown {
  if (!file) throw new SluiceError('SLUICE_ERR_CONFIG', missing);
  let text: string;
  try {
    text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e: unknown) {
    throw new SluiceError('SLUICE_ERR_CONFIG', `cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e: unknown) {
    throw new SluiceError('SLUICE_ERR_CONFIG', `${file} is not JSON: ${(e as Error).message}`);
  }
}
