import type { Command } from 'commander';

/**
 * Request fields whose flag is not their own name spelled with dashes, by command
 * (`expected_version` is `--expected-version` everywhere and needs no entry).
 */
const RENAMED: Record<string, Record<string, string>> = {
  'dlq group': { status: '--set' },
};

/**
 * The flag of the running command that sets the request field an HTTP error names (the
 * server speaks in JSON fields: `"group_by"` is `--group-by` here), or null when none does.
 */
export function flagFor(program: Command, argv: readonly string[], field: string): string | null {
  let c = program;
  const path: string[] = [];
  for (const word of argv) {
    if (word.startsWith('-')) continue;
    const sub = c.commands.find((x) => x.name() === word || x.aliases().includes(word));
    if (!sub) break;
    c = sub;
    path.push(sub.name());
  }
  const top = field.split(/[./]/).find((part) => part !== '') ?? field;
  const renamed = RENAMED[path.join(' ')]?.[top];
  if (renamed) return renamed;
  const flag = `--${top.replace(/_/g, '-')}`;
  return c.options.some((o) => o.long === flag) ? flag : null;
}
