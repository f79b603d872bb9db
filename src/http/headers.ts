/**
 * The security headers of every console response (`/`, `/ui/…`).
 *
 * The Content-Security-Policy admits only the console's own files: no inline script and no
 * eval (script-src 'self'), no inline style sheets (style-src 'self'; the chart library sets
 * element styles from script, which CSP does not govern), requests only to this origin, no
 * plugins, no <base> rewriting, and no framing (frame-ancestors 'none', the CSP form of
 * X-Frame-Options: DENY, which is sent too for older browsers). Event data is never markup in
 * the console; this policy is the second line if that ever fails. Values as the OWASP HTTP
 * Headers Cheat Sheet recommends them.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export const CONSOLE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
});
