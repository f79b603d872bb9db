import { probeAll } from '../backends/registry.js';
import type { Finding } from '../backends/backend.js';
import type { Config } from '../config/schema.js';

export type { Finding };

/**
 * `sluice doctor`: checks the backends a configuration names, and how they are set up for
 * durability, and says what to change: each port's backend probes its own engine
 * (Backend.probe), loading only that engine's driver. Exit status 1 when something fails,
 * 0 otherwise (warnings included).
 */
export async function doctor(config: Readonly<Config>): Promise<Finding[]> {
  return probeAll(config);
}

export function formatFindings(findings: Finding[]): string {
  const mark = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' };
  return findings.map((f) => `${mark[f.level]}  ${f.what}: ${f.detail}`).join('\n');
}
