/**
 * The operator's scope: where the catalog keeps what applies to every tenant (the operator
 * pipeline's versions, the operator-level enrichment document, operator-wide rollouts), in
 * the same tables as a tenant's, under this name in place of a tenant's.
 *
 * No tenant can be named so: tenant names are 1–63 lowercase letters, digits, "-" or "_",
 * starting with a letter or digit (src/backends/api-keys.ts), and "@" is none of those. So a
 * tenant's key never reaches the operator's rows, and nothing the operator writes is listed
 * as a tenant's.
 */
export const OPERATOR_SCOPE = '@operator';
