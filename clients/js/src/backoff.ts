/**
 * backoff is "full jitter": a uniformly random wait between 0 and
 * min(cap, base·2^attempt), so clients that lost their pod together do not
 * come back together. attempt counts failures in a row, from 0.
 */
export function backoff(attempt: number, base: number, cap: number, random: () => number = Math.random): number {
  return random() * Math.min(cap, base * 2 ** Math.min(attempt, 30));
}

/** retryAfter reads a Retry-After header (seconds or an HTTP date) as milliseconds, 0 when absent or unreadable. */
export function retryAfter(header: string | null, now = Date.now()): number {
  if (!header) return 0;
  if (/^\d+$/.test(header.trim())) return +header * 1000;
  const at = Date.parse(header);
  return isNaN(at) ? 0 : Math.max(0, at - now);
}
