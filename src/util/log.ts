// Structured JSON-lines logging (pino, synchronous so nothing is lost on a hard kill).
// Passwords in conninfo strings and config fields are redacted.
import { pino } from 'pino';

export type Logger = pino.Logger;

/** Logs to stdout and, when given, also appends to `file` (both synchronous). */
export function createLogger(name: string, bindings: Record<string, unknown> = {}, file?: string): Logger {
  const streams: pino.StreamEntry[] = [{ stream: pino.destination({ dest: 1, sync: true }) }];
  if (file) streams.push({ stream: pino.destination({ dest: file, sync: true, append: true, mkdir: true }) });
  return pino(
    {
      name,
      base: bindings,
      level: process.env.PGARBITER_LOG_LEVEL ?? 'info',
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['password', '*.password', 'secret', '*.secret', 'conninfo'], censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.multistream(streams),
  );
}

/** Removes password=... from a libpq conninfo string before it is shown anywhere. */
export function redactConninfo(conninfo: string): string {
  return conninfo.replace(/password=('([^'\\]|\\.)*'|\S+)/g, 'password=[redacted]');
}
