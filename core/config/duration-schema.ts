import { z } from 'zod';
import { parseDuration, type Duration } from './duration.ts';

const DURATION_HINT = "expected a duration such as 500, '250ms', '30s', '5m' or '1h'";

/**
 * A zod schema for a `Duration` option: accepts `500`, `'250ms'`, `'30s'`... and yields milliseconds.
 * Typed as taking a `Duration`, so an editor flags `'5 sec'` in a plugin's options as it does in the
 * config; at run time any string is checked, with a message that says what was expected.
 */
export const durationSchema = z.union([z.number(), z.string()], { error: DURATION_HINT }).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === null) {
    ctx.addIssue({ code: 'custom', message: `${DURATION_HINT}, got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return ms;
}) as unknown as z.ZodType<number, Duration>;
