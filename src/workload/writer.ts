// The writer: N concurrent client sessions, each running BEGIN; INSERT customer; INSERT order
// (same id); COMMIT, and recording every id's outcome in the ledger. It never knows which node
// is primary: it connects through the target (an HAProxy read-write port, or a multi-host list
// with target_session_attrs=read-write) and reconnects by itself after any error.
//
// Outcomes, decided by how far the transaction got:
//   error before COMMIT was sent                  -> fail     (cannot be committed)
//   COMMIT answered with ERROR                    -> fail     (rolled back by the server)
//   COMMIT returned OK                            -> ack      (+ warning if the server said the
//                                                              sync-rep wait was cancelled)
//   connection broke / timed out during COMMIT    -> unknown  (the checker resolves it)
import { randomInt } from 'node:crypto';
import { rmSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import '../postgres/pg-runtime.js';
import pg from 'pg';
import { closeClient, errorText } from '../postgres/client.js';
import { UserError } from '../util/errors.js';
import {
  type ConnTarget,
  connectTarget,
  describeTarget,
  NoSuitableServerError,
  parseDsn,
  type SessionInfo,
} from './dsn.js';
import { encodeId, MAX_RUN, MAX_SEQ, MAX_SESSIONS, runIdRange } from './ids.js';
import { LEDGER_FORMAT, LEDGER_VERSION, type LedgerHeader, LedgerWriter, type Outcome } from './ledger.js';
import { ensureWriterSchema } from './schema.js';

export interface WriterOptions {
  /** libpq keyword string / URI / host:port, or an already parsed target. */
  target: string | ConnTarget;
  /** Overrides any password in the target (never printed or written to the ledger). */
  password?: string;
  /** Concurrent sessions (1..256), default 4. */
  sessions?: number;
  /** Ledger file to create; default ./writer-<runId>.jsonl. Must not exist. */
  ledgerPath?: string;
  /** Stop by itself after this long; default: run until stop(). */
  durationMs?: number;
  /** Transactions per second per session; 0 or undefined = as fast as possible. */
  ratePerSession?: number;
  /** Per host connect timeout; default the target's connect_timeout (2 s). */
  connectTimeoutMs?: number;
  /** Deadline of BEGIN and the INSERTs (a silent partition otherwise hangs ~15 min). */
  queryTimeoutMs?: number;
  /** Deadline of COMMIT; keep it above the sync stall timeout or stalls become `unknown`. */
  commitTimeoutMs?: number;
  /** On stop, how long in-flight transactions may finish before their connections are cut. */
  stopGraceMs?: number;
  /** Reconnect backoff bounds. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** How long the setup waits for a writable server (default 0: fail at once). */
  setupWaitMs?: number;
  applicationName?: string;
  onEvent?: (e: WriterEvent) => void;
}

export interface WriterEvent {
  t: number;
  session: number;
  kind: 'connected' | 'disconnected' | 'connect-failed';
  server?: string;
  detail?: string;
}

export interface WriterStats {
  runId: string;
  elapsedMs: number;
  acknowledged: number;
  failed: number;
  unknown: number;
  acknowledgedWithWarning: number;
  reconnects: number;
  connectedSessions: number;
  /** Current server of each session (null while disconnected). */
  sessionServers: (string | null)[];
  /** Acks per server over the whole run. */
  acksByServer: Record<string, number>;
  lastError: string | null;
  /** Time since the last ack (0 before the first). */
  currentGapMs: number;
  maxAckGapMs: number;
  /** Acks per second since start (index 0 = the first second). */
  acksPerSecond: number[];
}

export interface WriterSummary
  extends Omit<WriterStats, 'connectedSessions' | 'sessionServers' | 'currentGapMs'> {
  run: number;
  ledgerPath: string;
  target: string;
  sessions: number;
  startedAt: string;
  endedAt: string;
  durationMs: number;
  synchronousCommit: string;
  synchronousStandbyNames: string;
  systemIdentifier: string | null;
  ackRatePerSec: number;
  maxAckGap: { ms: number; from: string; to: string } | null;
  stoppedBy: 'duration' | 'stop';
}

export interface WriterHandle {
  readonly runId: string;
  readonly run: number;
  readonly ledgerPath: string;
  readonly header: LedgerHeader;
  stats(): WriterStats;
  /** Stops (idempotent; a second call cuts in-flight transactions at once). */
  stop(): Promise<WriterSummary>;
  /** Settles when the writer has stopped, by stop() or by its duration. */
  readonly done: Promise<WriterSummary>;
}

const CUSTOMER_SQL = 'INSERT INTO customers (id, name, city) VALUES ($1, $2, $3)';
const ORDER_SQL = 'INSERT INTO orders (id, customer_id, session, amount) VALUES ($1, $1, $2, $3)';
const CITIES = ['London', 'Eindhoven', 'Arlington', 'Novosibirsk', 'Boston', 'Zurich', 'Kyoto', 'Lagos'];

function validate(o: WriterOptions): void {
  const sessions = o.sessions ?? 4;
  if (!Number.isInteger(sessions) || sessions < 1 || sessions > MAX_SESSIONS)
    throw new UserError(`sessions must be a whole number from 1 to ${MAX_SESSIONS} (got ${o.sessions})`);
  if (o.durationMs !== undefined && !(Number.isFinite(o.durationMs) && o.durationMs > 0))
    throw new UserError(`duration must be a positive number of seconds (got ${(o.durationMs ?? 0) / 1000})`);
  if (o.ratePerSession !== undefined && !(Number.isFinite(o.ratePerSession) && o.ratePerSession >= 0))
    throw new UserError(`rate must be zero (full speed) or a positive number (got ${o.ratePerSession})`);
  for (const k of ['connectTimeoutMs', 'queryTimeoutMs', 'commitTimeoutMs'] as const) {
    const v = o[k];
    if (v !== undefined && !(Number.isFinite(v) && v > 0))
      throw new UserError(`${k} must be positive (got ${v})`);
  }
}

/** A COMMIT that errored: was it certainly not committed? */
function commitErrorOutcome(e: unknown): Outcome {
  if (e instanceof pg.DatabaseError) {
    // ERROR = the server rolled the transaction back. FATAL/PANIC or anything else: we cannot tell.
    if (e.severity === 'ERROR' || e.code?.startsWith('40') || e.code?.startsWith('23')) return 'fail';
  }
  return 'unknown';
}

/** Waits for p, at most ms; the timer never outlives the wait (no process kept alive). */
async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

interface Session {
  index: number;
  client: pg.Client | null;
  server: string | null;
  seq: number;
  inCommit: boolean;
  commitWarning: string | null;
  loop?: Promise<void>;
}

/**
 * Connects (fails fast with a UserError if no writable server answers), registers a run number,
 * creates the ledger and starts the sessions. Resolves once writing has started.
 */
export async function startWriter(opts: WriterOptions): Promise<WriterHandle> {
  validate(opts);
  const parsed =
    typeof opts.target === 'string'
      ? parseDsn(opts.target, { targetSessionAttrs: 'read-write' })
      : opts.target;
  const target: ConnTarget = {
    ...parsed,
    connectTimeoutMs: opts.connectTimeoutMs ?? parsed.connectTimeoutMs,
  };
  const password = opts.password ?? target.password;
  const nSessions = opts.sessions ?? 4;
  const queryTimeoutMs = opts.queryTimeoutMs ?? 5000;
  const commitTimeoutMs = opts.commitTimeoutMs ?? 10_000;
  const stopGraceMs = opts.stopGraceMs ?? 3000;
  const backoffMin = opts.backoffMinMs ?? 100;
  const backoffMax = opts.backoffMaxMs ?? 1000;
  const appName = opts.applicationName ?? 'pgarbiter-writer';
  const targetText = describeTarget(target);

  // A named ledger is created first: a bad path fails before any connection is made.
  let ledger: LedgerWriter | undefined = opts.ledgerPath ? new LedgerWriter(opts.ledgerPath) : undefined;
  const discardLedger = () => {
    if (!ledger) return;
    ledger.close();
    rmSync(ledger.path, { force: true });
  };

  // Setup session: schema, run number, what the server promises.
  let setup: pg.Client;
  let info: SessionInfo;
  try {
    // A cluster in a failover has no writable server for a few seconds: --setup-wait waits for
    // one (bounded); without it the writer fails at once.
    const setupDeadline = Date.now() + (opts.setupWaitMs ?? 0);
    for (let attempt = 1; ; attempt++) {
      try {
        ({ client: setup, info } = await connectTarget(target, {
          password,
          queryTimeoutMs: commitTimeoutMs,
          applicationName: `${appName}-setup`,
        }));
        break;
      } catch (e) {
        if (!(e instanceof NoSuitableServerError) || Date.now() + 500 > setupDeadline || attempt >= 1000)
          throw e;
        opts.onEvent?.({
          t: Date.now(),
          session: 0,
          kind: 'connect-failed',
          detail: `setup, retrying: ${errorText(e)}`,
        });
        await delay(500);
      }
    }
  } catch (e) {
    discardLedger();
    throw e;
  }
  let run = 0;
  let systemIdentifier: string | null = null;
  try {
    try {
      const r = await setup.query<{ id: string }>(
        'SELECT system_identifier::text AS id FROM pg_control_system()',
      );
      systemIdentifier = r.rows[0]?.id ?? null;
    } catch {
      systemIdentifier = null; // needs superuser or GRANT EXECUTE ON FUNCTION pg_control_system()
    }
    // The setup's own writes (schema, run register) are bookkeeping, not data under test: they
    // must not wait for a stalled synchronous standby (info above kept the session's real mode).
    await setup.query('SET synchronous_commit = local');
    await ensureWriterSchema(setup);
    for (let attempt = 0; attempt < 20 && run === 0; attempt++) {
      const candidate = randomInt(1, MAX_RUN + 1);
      const { lo, hi } = runIdRange(candidate);
      const used = await setup.query('SELECT 1 FROM customers WHERE id >= $1 AND id < $2 LIMIT 1', [lo, hi]);
      if (used.rowCount) continue;
      const ins = await setup.query(
        'INSERT INTO writer_runs (run, sessions, target) VALUES ($1, $2, $3) ON CONFLICT (run) DO NOTHING RETURNING run',
        [candidate, nSessions, targetText],
      );
      if (ins.rowCount) run = candidate;
    }
    if (run === 0) throw new Error('could not register a fresh run number in writer_runs after 20 attempts');
    ledger ??= new LedgerWriter(`writer-r${run}.jsonl`);
  } catch (e) {
    discardLedger();
    if (e instanceof UserError) throw e;
    throw new UserError(`writer setup on ${info.server} failed: ${errorText(e)}`);
  } finally {
    await closeClient(setup);
  }

  const runId = `r${run}`;
  const startMs = Date.now();
  const header: LedgerHeader = {
    type: 'header',
    format: LEDGER_FORMAT,
    version: LEDGER_VERSION,
    runId,
    run,
    startedAt: new Date(startMs).toISOString(),
    startedAtMs: startMs,
    target: targetText,
    sessions: nSessions,
    server: info.server,
    serverVersion: info.serverVersion,
    synchronousCommit: info.synchronousCommit,
    synchronousStandbyNames: info.synchronousStandbyNames,
    systemIdentifier,
    tables: ['customers', 'orders'],
  };
  ledger.append(header);

  // Counters.
  let acknowledged = 0;
  let failed = 0;
  let unknown = 0;
  let ackWarned = 0;
  let reconnects = 0;
  let lastError: string | null = null;
  let lastAckAt: number | null = null;
  let maxGap: { ms: number; from: number; to: number } | null = null;
  const perSecond: number[] = [];
  const acksByServer: Record<string, number> = {};
  let fatal: unknown = null;

  const stopCtl = new AbortController();
  let stopping = false;
  let stoppedBy: WriterSummary['stoppedBy'] = 'stop';
  const sessions: Session[] = Array.from({ length: nSessions }, (_, index) => ({
    index,
    client: null,
    server: null,
    seq: 0,
    inCommit: false,
    commitWarning: null,
  }));

  const emit = (e: WriterEvent) => {
    try {
      ledger.append({
        type: 'event',
        t: e.t,
        session: e.session,
        event: e.kind,
        server: e.server,
        detail: e.detail,
      });
    } catch (err) {
      fatal ??= err;
    }
    try {
      opts.onEvent?.(e);
    } catch {
      // a listener's bug must not stop the writer
    }
  };

  const record = (
    s: Session,
    id: string,
    outcome: Outcome,
    began: number,
    error?: string,
    warning?: string,
  ) => {
    const t = Date.now();
    ledger.append({
      type: 'tx',
      id,
      session: s.index,
      seq: s.seq,
      outcome,
      t,
      ms: Math.round((t - began) * 10) / 10,
      server: s.server,
      ...(error ? { error } : {}),
      ...(warning ? { warning } : {}),
    });
    if (outcome === 'ack') {
      acknowledged++;
      if (warning) ackWarned++;
      if (s.server) acksByServer[s.server] = (acksByServer[s.server] ?? 0) + 1;
      if (lastAckAt !== null && (maxGap === null || t - lastAckAt > maxGap.ms))
        maxGap = { ms: t - lastAckAt, from: lastAckAt, to: t };
      lastAckAt = t;
      const sec = Math.max(0, Math.floor((t - startMs) / 1000));
      while (perSecond.length <= sec) perSecond.push(0);
      perSecond[sec] = (perSecond[sec] ?? 0) + 1;
    } else if (outcome === 'fail') failed++;
    else unknown++;
    if (error) lastError = error;
  };

  const disconnect = async (s: Session, why: string) => {
    const c = s.client;
    if (!c) return;
    s.client = null;
    emit({
      t: Date.now(),
      session: s.index,
      kind: 'disconnected',
      server: s.server ?? undefined,
      detail: why,
    });
    s.server = null;
    await closeClient(c);
  };

  const pause = (ms: number) => delay(ms, undefined, { signal: stopCtl.signal }).catch(() => {});

  async function sessionLoop(s: Session): Promise<void> {
    let backoff = backoffMin;
    const interval = opts.ratePerSession ? 1000 / opts.ratePerSession : 0;
    let nextDue = Date.now();
    let lastConnectError = '';
    // Bounded by stop/duration and by the id space of one session.
    while (!stopping && fatal === null && s.seq < MAX_SEQ) {
      if (!s.client) {
        try {
          const { client, info: si } = await connectTarget(target, {
            password,
            queryTimeoutMs,
            applicationName: `${appName}-${runId}-s${s.index}`,
          });
          if (stopping) {
            await closeClient(client);
            break;
          }
          attachNotice(client, s);
          s.client = client;
          s.server = si.server;
          backoff = backoffMin;
          lastConnectError = '';
          emit({ t: Date.now(), session: s.index, kind: 'connected', server: s.server });
        } catch (e) {
          const msg = errorText(e);
          lastError = msg;
          if (msg !== lastConnectError)
            emit({ t: Date.now(), session: s.index, kind: 'connect-failed', detail: msg });
          lastConnectError = msg;
          await pause(backoff);
          backoff = Math.min(backoffMax, backoff * 2);
          continue;
        }
      }
      if (interval > 0) {
        // Paced, without catching up: after an outage the rate resumes, it does not burst.
        const wait = nextDue - Date.now();
        if (wait > 0) await pause(wait);
        if (stopping) break;
        nextDue = Math.max(nextDue, Date.now() - interval) + interval;
      }
      const client = s.client;
      if (!client) continue;
      s.seq++;
      const id = encodeId(run, s.index, s.seq);
      const began = Date.now();
      let phase: 'begin' | 'commit' = 'begin';
      let outcome: Outcome;
      let error: string | undefined;
      let failure = false;
      try {
        await client.query('BEGIN');
        await client.query({
          name: 'w_customer',
          text: CUSTOMER_SQL,
          values: [id, `writer ${runId}/${s.index} #${s.seq}`, CITIES[s.seq % CITIES.length]],
        });
        await client.query({
          name: 'w_order',
          text: ORDER_SQL,
          values: [id, `${runId}/s${s.index}`, ((s.seq % 10_000) / 100 + 1).toFixed(2)],
        });
        phase = 'commit';
        s.inCommit = true;
        s.commitWarning = null;
        const res = await client.query({ text: 'COMMIT', query_timeout: commitTimeoutMs } as pg.QueryConfig);
        // COMMIT of an aborted transaction answers ROLLBACK without an error.
        outcome = res.command === 'COMMIT' ? 'ack' : 'fail';
        if (outcome === 'fail') error = `COMMIT answered ${res.command}`;
      } catch (e) {
        outcome = phase === 'commit' ? commitErrorOutcome(e) : 'fail';
        error = errorText(e);
        failure = true;
      }
      s.inCommit = false;
      try {
        record(s, id, outcome, began, error, s.commitWarning ?? undefined);
      } catch (err) {
        fatal ??= err;
      }
      s.commitWarning = null;
      if (failure || outcome !== 'ack') {
        // After any error: drop the connection (it may be half-dead) and find a server again.
        await disconnect(s, error ?? 'error');
        reconnects++;
        await pause(backoff);
        backoff = Math.min(backoffMax, backoff * 2);
      }
    }
    await disconnect(s, 'writer stopped');
  }

  function attachNotice(client: pg.Client, s: Session) {
    client.on('notice', (n) => {
      if (!s.inCommit) return;
      const text = [n.message, n.detail].filter(Boolean).join(' ');
      s.commitWarning = s.commitWarning ? `${s.commitWarning} | ${text}` : text;
    });
  }

  for (const s of sessions) s.loop = sessionLoop(s);
  const allDone = Promise.all(sessions.map((s) => s.loop));

  const syncTimer = setInterval(() => {
    try {
      ledger.sync();
    } catch (e) {
      fatal ??= e;
    }
  }, 1000);
  let durationTimer: NodeJS.Timeout | undefined;

  const stats = (): WriterStats => ({
    runId,
    elapsedMs: Date.now() - startMs,
    acknowledged,
    failed,
    unknown,
    acknowledgedWithWarning: ackWarned,
    reconnects,
    connectedSessions: sessions.filter((s) => s.client).length,
    sessionServers: sessions.map((s) => s.server),
    acksByServer: { ...acksByServer },
    lastError,
    currentGapMs: lastAckAt === null ? 0 : Date.now() - lastAckAt,
    maxAckGapMs: (maxGap as { ms: number } | null)?.ms ?? 0,
    acksPerSecond: [...perSecond],
  });

  let stopPromise: Promise<WriterSummary> | undefined;
  let cut: (() => void) | undefined;
  const cutNow = new Promise<void>((r) => {
    cut = r;
  });

  const doStop = async (): Promise<WriterSummary> => {
    stopping = true;
    stopCtl.abort();
    if (durationTimer) clearTimeout(durationTimer);
    // Let in-flight transactions finish, then cut their connections (outcome: unknown if in COMMIT).
    await within(Promise.race([allDone, cutNow]), stopGraceMs);
    for (const s of sessions) if (s.client) await closeClient(s.client);
    // After the cut every pending query rejects at once; bound the wait anyway.
    await within(allDone, stopGraceMs + 2000);
    clearInterval(syncTimer);
    const endMs = Date.now();
    const st = stats();
    const g = maxGap as { ms: number; from: number; to: number } | null;
    const summary: WriterSummary = {
      runId,
      run,
      ledgerPath: ledger.path,
      target: targetText,
      sessions: nSessions,
      startedAt: header.startedAt,
      endedAt: new Date(endMs).toISOString(),
      durationMs: endMs - startMs,
      synchronousCommit: header.synchronousCommit,
      synchronousStandbyNames: header.synchronousStandbyNames,
      systemIdentifier,
      elapsedMs: st.elapsedMs,
      acknowledged,
      failed,
      unknown,
      acknowledgedWithWarning: ackWarned,
      reconnects,
      acksByServer: st.acksByServer,
      lastError,
      maxAckGapMs: g?.ms ?? 0,
      maxAckGap: g
        ? { ms: g.ms, from: new Date(g.from).toISOString(), to: new Date(g.to).toISOString() }
        : null,
      ackRatePerSec: Math.round((acknowledged / Math.max(1, endMs - startMs)) * 1000 * 10) / 10,
      acksPerSecond: st.acksPerSecond,
      stoppedBy,
    };
    try {
      ledger.append({ type: 'end', t: endMs, summary: summary as unknown as Record<string, unknown> });
    } finally {
      ledger.close();
    }
    if (fatal !== null) throw new UserError(`writer stopped on a ledger error: ${errorText(fatal)}`);
    return summary;
  };

  const stop = (): Promise<WriterSummary> => {
    if (stopPromise) {
      cut?.();
      return stopPromise;
    }
    stopPromise = doStop();
    return stopPromise;
  };

  let resolveDone: (s: WriterSummary) => void = () => {};
  let rejectDone: (e: unknown) => void = () => {};
  const done = new Promise<WriterSummary>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  done.catch(() => {}); // callers may only use stop()

  if (opts.durationMs !== undefined) {
    durationTimer = setTimeout(() => {
      stoppedBy = 'duration';
      stop().then(resolveDone, rejectDone);
    }, opts.durationMs);
  }
  // A ledger failure stops everything; so does every session ending by itself (id space used up).
  allDone.then(() => {
    if (!stopping) stop().then(resolveDone, rejectDone);
  });

  return {
    runId,
    run,
    ledgerPath: ledger.path,
    header,
    stats,
    stop: () => {
      const p = stop();
      p.then(resolveDone, rejectDone);
      return p;
    },
    done,
  };
}
