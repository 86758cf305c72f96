// Structured JSON-lines logging, synchronous so nothing is lost on a hard kill. Passwords in
// conninfo strings and config fields are redacted. Own code rather than pino: the daemons use
// four methods of it, and pino's modules (with a worker-thread transport, never used here) held
// ~2 MB of every daemon's memory (bench/README.md, bench/light). Same lines as before:
// {"level":"info","time":"<ISO>","node":"pg1","name":"agent",...fields,"msg":"..."}.
import { mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { UserError } from './errors.js';

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity } as const;
type Level = 'debug' | 'info' | 'warn' | 'error';
type LogFn = { (fields: Record<string, unknown>, msg: string): void; (msg: string): void };
export type Logger = Record<Level, LogFn>;

/** Keys whose value is never written (at the top level; password and secret one level down too). */
const REDACTED = '[redacted]';
const SECRET_KEYS = new Set(['password', 'secret']);

/** `fields` with secrets replaced by [redacted]; the caller's object is left as it is. */
export function redactFields(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (SECRET_KEYS.has(k) || k === 'conninfo') out[k] = REDACTED;
    else if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const inner: Record<string, unknown> = {};
      for (const [ik, iv] of Object.entries(v)) inner[ik] = SECRET_KEYS.has(ik) ? REDACTED : iv;
      out[k] = inner;
    } else out[k] = v;
  }
  return out;
}

/** What writeAll waits on (nothing ever wakes it: Atomics.wait is a synchronous 10 ms sleep). */
const PAUSE = new Int32Array(new SharedArrayBuffer(4));

/** Writes all of `line` to `fd`, waiting out a full non-blocking pipe for up to 1 s; a line that
 *  cannot be written is dropped: logging never stops a daemon. */
function writeAll(fd: number, line: Buffer): void {
  let off = 0;
  for (let tries = 0; off < line.length && tries < 100; ) {
    try {
      off += writeSync(fd, line, off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') return;
      tries++;
      Atomics.wait(PAUSE, 0, 0, 10);
    }
  }
}

/** Logs to stdout and, when given, also appends to `file` (both synchronous). The level comes from
 *  PGARBITER_LOG_LEVEL (default info). */
export function createLogger(name: string, bindings: Record<string, unknown> = {}, file?: string): Logger {
  const levelName = (process.env.PGARBITER_LOG_LEVEL ?? 'info') as keyof typeof LEVELS;
  const min = LEVELS[levelName];
  if (min === undefined)
    throw new UserError(
      `PGARBITER_LOG_LEVEL=${levelName}: use one of ${Object.keys(LEVELS).join(', ')} (or leave it unset: info)`,
    );
  const fds = [1];
  if (file) {
    mkdirSync(dirname(file), { recursive: true });
    fds.push(openSync(file, 'a'));
  }
  const head = JSON.stringify({ ...bindings, name }).slice(1, -1);
  const method =
    (level: Level): LogFn =>
    (a: Record<string, unknown> | string, msg?: string) => {
      if (LEVELS[level] < min) return;
      const fields = typeof a === 'string' ? '' : JSON.stringify(redactFields(a)).slice(1, -1);
      const text = JSON.stringify(typeof a === 'string' ? a : (msg ?? ''));
      const time = new Date().toISOString();
      const line = `{"level":"${level}","time":"${time}",${head}${fields ? `,${fields}` : ''},"msg":${text}}\n`;
      const buf = Buffer.from(line);
      for (const fd of fds) writeAll(fd, buf);
    };
  return { debug: method('debug'), info: method('info'), warn: method('warn'), error: method('error') };
}

/** Removes password=... from a libpq conninfo string before it is shown anywhere. */
export function redactConninfo(conninfo: string): string {
  return conninfo.replace(/password=('([^'\\]|\\.)*'|\S+)/g, 'password=[redacted]');
}
