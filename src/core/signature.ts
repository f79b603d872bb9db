import { createHash } from 'node:crypto';

/**
 * Error signatures group dead letters that failed the same way: the reason, the field (with
 * array indices folded, so `/items/0/price` and `/items/7/price` are one field) and the
 * message with its variable parts (quoted values, numbers) replaced by placeholders.
 */

export function messageTemplate(message: string): string {
  return message
    .replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
    .replace(/'(?:[^'\\]|\\.)*'/g, "'…'")
    .replace(/-?\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b/gi, 'N')
    .slice(0, 300);
}

export function foldPath(path: string): string {
  return path.replace(/\/\d+(?=\/|$)/g, '/*');
}

export function errorSignature(reason: string, path: string, message: string): string {
  return createHash('sha256').update(`${reason}\u0000${foldPath(path)}\u0000${messageTemplate(message)}`).digest('hex').slice(0, 16);
}
