// The writer's ledger: JSON lines, appended with one write(2) per line, so a crash of the writer
// loses at most the line in flight (fsync once a second and at close bounds what a power loss
// could take). Line 1 is the header; then one `tx` line per transaction outcome, `event` lines
// (connects, disconnects) and, after a clean stop, an `end` line with the summary.
//
// Parsing is pure (text or lines in, Ledger out) so it is unit-tested; readLedger streams a file.
import {
  closeSync,
  createReadStream,
  existsSync,
  fstatSync,
  fsyncSync,
  openSync,
  readSync,
  statSync,
  writeSync,
} from 'node:fs';
import { createInterface } from 'node:readline';
import { StringDecoder } from 'node:string_decoder';
import { UserError } from '../util/errors.js';
import { decodeId } from './ids.js';

export const LEDGER_FORMAT = 'pgarbiter-ledger';
export const LEDGER_VERSION = 1;

export interface LedgerHeader {
  type: 'header';
  format: typeof LEDGER_FORMAT;
  version: number;
  /** Printable run id, e.g. "r4711". */
  runId: string;
  /** The number encoded in every id of this run (see ids.ts). */
  run: number;
  startedAt: string;
  startedAtMs: number;
  /** Connection target without the password. */
  target: string;
  sessions: number;
  /** The server that answered the writer's setup session. */
  server: string;
  serverVersion: string;
  /** What the server reported to the writer's session. */
  synchronousCommit: string;
  synchronousStandbyNames: string;
  /** pg_control_system().system_identifier, null when the role may not read it. */
  systemIdentifier: string | null;
  tables: string[];
}

/** ack: COMMIT returned OK. fail: error before COMMIT was sent, or COMMIT answered ERROR.
 *  unknown: the connection broke or timed out while COMMIT was in flight. */
export type Outcome = 'ack' | 'fail' | 'unknown';
export const OUTCOMES: readonly Outcome[] = ['ack', 'fail', 'unknown'];

export interface TxEntry {
  type: 'tx';
  id: string;
  session: number;
  seq: number;
  outcome: Outcome;
  /** Epoch ms when the outcome was known. */
  t: number;
  /** Latency of the transaction, BEGIN to outcome. */
  ms: number;
  /** inet_server_addr():port of the session's server, null if never connected. */
  server: string | null;
  error?: string;
  /** A server WARNING during COMMIT, e.g. a cancelled synchronous-replication wait
   *  ("committed locally, but might not have been replicated"). */
  warning?: string;
}

export interface EventEntry {
  type: 'event';
  t: number;
  session: number;
  event: 'connected' | 'disconnected' | 'connect-failed';
  server?: string;
  detail?: string;
}

export interface EndEntry {
  type: 'end';
  t: number;
  summary: Record<string, unknown>;
}

export type LedgerLine = LedgerHeader | TxEntry | EventEntry | EndEntry;

export interface Ledger {
  header: LedgerHeader;
  txs: TxEntry[];
  events: EventEntry[];
  end?: EndEntry;
  /** Tolerated problems (an incomplete last line). */
  warnings: string[];
}

export class LedgerError extends UserError {
  constructor(source: string, line: number | undefined, message: string) {
    super(`${source}${line ? `:${line}` : ''}: ${message}`);
    this.name = 'LedgerError';
  }
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
const isStr = (v: unknown): v is string => typeof v === 'string';

function checkHeader(v: Record<string, unknown>): string | undefined {
  if (v.format !== LEDGER_FORMAT) return `not a pgarbiter ledger (format ${JSON.stringify(v.format)})`;
  if (v.version !== LEDGER_VERSION)
    return `ledger version ${v.version} is not supported (expected ${LEDGER_VERSION})`;
  for (const k of ['runId', 'startedAt', 'target', 'server', 'synchronousCommit', 'synchronousStandbyNames'])
    if (!isStr(v[k])) return `header field ${k} is missing or not a string`;
  for (const k of ['run', 'startedAtMs', 'sessions'])
    if (!isInt(v[k])) return `header field ${k} is missing or not an integer`;
  if (v.systemIdentifier !== null && !isStr(v.systemIdentifier))
    return 'header field systemIdentifier is not a string';
  return undefined;
}

function checkTx(v: Record<string, unknown>, run: number): string | undefined {
  if (!isStr(v.id) || !/^[0-9]{1,19}$/.test(v.id)) return 'tx line without a valid id';
  if (!OUTCOMES.includes(v.outcome as Outcome))
    return `tx ${v.id}: unknown outcome ${JSON.stringify(v.outcome)}`;
  if (!isInt(v.session) || !isInt(v.seq) || typeof v.t !== 'number')
    return `tx ${v.id}: session, seq and t must be numbers`;
  const d = decodeId(v.id);
  if (d.run !== run || d.session !== v.session || d.seq !== v.seq)
    return `tx ${v.id}: id does not encode run ${run}, session ${v.session}, seq ${v.seq}`;
  return undefined;
}

/** Incremental parser: push lines in order, then finish(). */
export class LedgerParser {
  private header?: LedgerHeader;
  private readonly txs: TxEntry[] = [];
  private readonly events: EventEntry[] = [];
  private end?: EndEntry;
  private readonly warnings: string[] = [];
  private readonly seen = new Map<string, number>();
  private pendingBad?: { line: number; error: string };
  private lineNo = 0;

  constructor(private readonly source = 'ledger') {}

  push(raw: string): void {
    this.lineNo++;
    const line = raw.trim();
    if (!line) return;
    // A bad line is only forgivable if it is the last one: decide when the next line arrives.
    if (this.pendingBad) throw new LedgerError(this.source, this.pendingBad.line, this.pendingBad.error);
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      this.pendingBad = {
        line: this.lineNo,
        error: 'not valid JSON (corrupt line in the middle of the ledger)',
      };
      return;
    }
    if (!isObj(v)) throw new LedgerError(this.source, this.lineNo, 'a ledger line must be a JSON object');
    if (!this.header) {
      if (v.type !== 'header')
        throw new LedgerError(this.source, this.lineNo, 'the first line must be the header');
      const err = checkHeader(v);
      if (err) throw new LedgerError(this.source, this.lineNo, err);
      this.header = v as unknown as LedgerHeader;
      return;
    }
    if (this.end) throw new LedgerError(this.source, this.lineNo, 'line after the end line');
    switch (v.type) {
      case 'tx': {
        const err = checkTx(v, this.header.run);
        if (err) throw new LedgerError(this.source, this.lineNo, err);
        const tx = v as unknown as TxEntry;
        const prev = this.seen.get(tx.id);
        if (prev !== undefined)
          throw new LedgerError(
            this.source,
            this.lineNo,
            `id ${tx.id} already has an outcome on line ${prev}`,
          );
        this.seen.set(tx.id, this.lineNo);
        this.txs.push(tx);
        return;
      }
      case 'event':
        this.events.push(v as unknown as EventEntry);
        return;
      case 'end':
        this.end = v as unknown as EndEntry;
        return;
      case 'header':
        throw new LedgerError(this.source, this.lineNo, 'a second header (two runs in one ledger file?)');
      default:
        throw new LedgerError(this.source, this.lineNo, `unknown line type ${JSON.stringify(v.type)}`);
    }
  }

  /** What the lines pushed so far hold (no header yet while the file is empty). */
  soFar(): { header?: LedgerHeader; txs: readonly TxEntry[] } {
    return { header: this.header, txs: this.txs };
  }

  finish(): Ledger {
    if (this.pendingBad) {
      // The last line is cut (the writer was killed mid-write): tolerate it, loudly.
      this.warnings.push(
        `${this.source}:${this.pendingBad.line}: last line is incomplete (writer interrupted?); ignored`,
      );
      this.pendingBad = undefined;
    }
    if (!this.header) throw new LedgerError(this.source, undefined, 'ledger is empty (no header line)');
    return {
      header: this.header,
      txs: this.txs,
      events: this.events,
      end: this.end,
      warnings: this.warnings,
    };
  }
}

/** Parses a whole ledger held in memory. */
export function parseLedger(text: string, source = 'ledger'): Ledger {
  const p = new LedgerParser(source);
  const lines = text.split('\n');
  for (const l of lines) p.push(l);
  return p.finish();
}

/** Streams a ledger file (ledgers of millions of lines do not fit in one string). */
export async function readLedger(path: string): Promise<Ledger> {
  try {
    if (!statSync(path).isFile()) throw new UserError(`${path} is not a file`);
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`cannot read ledger ${path}: ${(e as Error).message}`);
  }
  const p = new LedgerParser(path);
  const rl = createInterface({
    input: createReadStream(path, { encoding: 'utf8' }),
    crlfDelay: Number.POSITIVE_INFINITY,
  });
  for await (const line of rl) p.push(line);
  return p.finish();
}

/**
 * Follows the ledger of a writer that may still be running: each poll() reads the bytes appended
 * since the last one and parses the complete lines (with readLedger's checks; a line still being
 * written waits for its newline). A file that does not exist yet holds nothing. For watching a
 * run (tests, scenarios, the demo, benchmarks); the verdict on a finished run is checkLedger's.
 */
export class LedgerTail {
  private readonly parser: LedgerParser;
  private offset = 0;
  private rest = '';
  private readonly decoder = new StringDecoder('utf8');

  constructor(readonly path: string) {
    this.parser = new LedgerParser(path);
  }

  /** Reads what was appended; returns every transaction outcome so far, in ledger order. */
  poll(): readonly TxEntry[] {
    if (existsSync(this.path)) {
      const fd = openSync(this.path, 'r');
      try {
        const size = fstatSync(fd).size;
        const buf = Buffer.alloc(1 << 20);
        // Bounded: at most the bytes the file had when we looked.
        while (this.offset < size) {
          const n = readSync(fd, buf, 0, Math.min(buf.length, size - this.offset), this.offset);
          if (n <= 0) break;
          this.offset += n;
          this.rest += this.decoder.write(buf.subarray(0, n));
        }
      } finally {
        closeSync(fd);
      }
      const lines = this.rest.split('\n');
      this.rest = lines.pop() ?? '';
      for (const l of lines) this.parser.push(l);
    }
    return this.parser.soFar().txs;
  }

  /** The acknowledged transactions so far (of `server` only, when given: see ackedBy). */
  acks(server?: string): TxEntry[] {
    return this.poll().filter((tx) => (server === undefined ? tx.outcome === 'ack' : ackedBy(tx, server)));
  }
}

/** The transaction outcomes of a ledger file as far as it is written now (see LedgerTail). */
export function ledgerTxs(path: string): readonly TxEntry[] {
  return new LedgerTail(path).poll();
}

/** Whether `tx` was acknowledged by the server at `address` (an IP address, any port). */
export function ackedBy(tx: TxEntry, address: string): boolean {
  const prefix = address.includes(':') ? `[${address}]:` : `${address}:`;
  return tx.outcome === 'ack' && tx.server !== null && tx.server.startsWith(prefix);
}

/** Appends ledger lines: one synchronous write per line, fsync on demand and at close. */
export class LedgerWriter {
  private fd: number | undefined;
  private dirty = false;

  /** Creates the file; refuses to append to an existing one (one run per ledger). */
  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, 'wx', 0o644);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'EEXIST')
        throw new UserError(`ledger ${path} already exists: choose another --ledger path`);
      throw new UserError(`cannot create ledger ${path}: ${err.message}`);
    }
  }

  append(line: LedgerLine): void {
    if (this.fd === undefined) throw new Error('ledger is closed');
    const buf = Buffer.from(`${JSON.stringify(line)}\n`);
    let off = 0;
    // A regular file takes the whole write at once; the loop only guards a short write.
    for (let i = 0; off < buf.length && i < 100; i++) off += writeSync(this.fd, buf, off);
    this.dirty = true;
  }

  sync(): void {
    if (this.fd !== undefined && this.dirty) {
      fsyncSync(this.fd);
      this.dirty = false;
    }
  }

  get closed(): boolean {
    return this.fd === undefined;
  }

  close(): void {
    if (this.fd === undefined) return;
    this.sync();
    closeSync(this.fd);
    this.fd = undefined;
  }
}

/** True if the file's last byte is a newline (used by tests and diagnostics). */
export function endsWithNewline(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return false;
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, size - 1);
    return b[0] === 0x0a;
  } finally {
    closeSync(fd);
  }
}
