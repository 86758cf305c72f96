// Structured JSON-lines logging (pino, synchronous so nothing is lost on a hard kill).
// Passwords in conninfo strings and config fields are redacted.
import { pino } from 'pino';

export type Logger = pino.Logger;

export function createLogger(name: string, bindings: Record<string, unknown> = {}, dest = 1): Logger {
  return pino(
    {
      name,
      base: bindings,
      level: process.env.PGARBITER_LOG_LEVEL ?? 'info',
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['password', '*.password', 'secret', '*.secret', 'conninfo'], censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ dest, sync: true }),
  );
}

/** Removes password=... from a libpq conninfo string before it is shown anywhere. */
export function redactConninfo(conninfo: string): string {
  return conninfo.replace(/password=('([^'\\]|\\.)*'|\S+)/g, 'password=[redacted]');
}
