// Stage 1 of the lab assignment, seen from the client host: read/write on the primary,
// read-only on the standby (PostgreSQL's own refusal, SQLSTATE 25006), the standby is current
// (with the measured delay), and both sides of the replication.
// collectStage1() opens sockets into the lab, so it must run inside a lab namespace: showStage1()
// re-runs our CLI inside `client` (`lab stage1-json`) and parses its JSON.
import Table from 'cli-table3';
import type pg from 'pg';
import { closeClient, errorText, makeClient, sqlState } from '../postgres/client.js';
import { color as pc } from '../util/color.js';
import { run, sleep } from '../util/exec.js';
import { hostArgv, selfArgv } from './daemon.js';
import { adminConn, appConn } from './pgconf.js';
import type { Lab } from './state.js';

type Row = Record<string, string | null>;

export interface Stage1Result {
  primary: {
    host: string;
    address: string;
    inRecovery: boolean;
    synchronousCommit: string;
    synchronousStandbyNames: string;
    inserted: { customerId: string; orderId: string; commitMs: number };
    counts: { customers: number; orders: number };
    latestOrders: Row[];
  };
  standby: {
    host: string;
    address: string;
    inRecovery: boolean;
    counts: { customers: number; orders: number };
    writeRefused: { sql: string; message: string; sqlstate: string | null } | null;
  };
  freshness: {
    orderId: string;
    commitMs: number;
    /** From the primary's COMMIT returning to the row being visible on the standby. */
    visibleAfterMs: number | null;
    polls: number;
    sameMaxOrderId: boolean;
  };
  replication: Row[];
  walReceiver: Row[];
  waitedForStreamingMs: number;
}

const ms = (t0: number) => Math.round((performance.now() - t0) * 1000) / 1000;

async function connect(o: ReturnType<typeof appConn>): Promise<pg.Client> {
  const c = makeClient(o);
  try {
    await c.connect();
  } catch (e) {
    await closeClient(c);
    throw new Error(`cannot connect to ${o.host}:${o.port} as ${o.user}: ${errorText(e)}`);
  }
  return c;
}

async function counts(c: pg.Client): Promise<{ customers: number; orders: number }> {
  const r = await c.query<{ customers: string; orders: string }>(
    'SELECT (SELECT count(*) FROM customers) AS customers, (SELECT count(*) FROM orders) AS orders',
  );
  return { customers: Number(r.rows[0]?.customers), orders: Number(r.rows[0]?.orders) };
}

/** Runs inside a lab namespace. Bounded: every query has a timeout, waits have deadlines. */
export async function collectStage1(lab: Lab): Promise<Stage1Result> {
  const admin1 = await connect(adminConn(lab, 'pg1', 'lab-stage1'));
  const app1 = await connect(appConn(lab, 'pg1', 'lab-stage1'));
  const admin2 = await connect(adminConn(lab, 'pg2', 'lab-stage1'));
  const app2 = await connect(appConn(lab, 'pg2', 'lab-stage1'));
  try {
    // Replication must be streaming before anything is shown (right after `lab up` it may not be).
    const tw = performance.now();
    const deadline = Date.now() + 15_000;
    for (;;) {
      const r = await admin1.query(
        "SELECT 1 FROM pg_stat_replication WHERE application_name = 'pg2' AND state = 'streaming'",
      );
      if (r.rowCount) break;
      if (Date.now() > deadline)
        throw new Error('pg2 is not streaming from pg1 after 15 s (see pg_stat_replication)');
      await sleep(50);
    }
    const waitedForStreamingMs = ms(tw);

    // Primary: a transaction that touches both tables, then a read.
    const info1 = (
      await app1.query<{ r: boolean; sc: string; ssn: string }>(
        "SELECT pg_is_in_recovery() AS r, current_setting('synchronous_commit') AS sc, current_setting('synchronous_standby_names') AS ssn",
      )
    ).rows[0]!;
    let t = performance.now();
    await app1.query('BEGIN');
    const cust = await app1.query<{ id: string }>(
      `INSERT INTO customers (id, name, city)
       SELECT coalesce(max(id), 0) + 1, 'Stage One ' || (coalesce(max(id), 0) + 1), 'Lab' FROM customers RETURNING id::text`,
    );
    const ord = await app1.query<{ id: string }>(
      `INSERT INTO orders (id, customer_id, session, amount)
       SELECT coalesce(max(id), 0) + 1, $1, 'stage1', 42.00 FROM orders RETURNING id::text`,
      [cust.rows[0]!.id],
    );
    await app1.query('COMMIT');
    const insertMs = ms(t);
    const latest = await app1.query<Row>(
      `SELECT o.id::text, c.name, c.city, o.amount::text, o.session, o.written_on, to_char(o.created_at, 'HH24:MI:SS.MS') AS created
       FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.id DESC LIMIT 5`,
    );
    const counts1 = await counts(app1);

    // Standby: reads work, a write is refused by PostgreSQL itself.
    const info2 = (await app2.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!;
    const refusedSql = "INSERT INTO customers (id, name, city) VALUES (-1, 'not allowed', 'standby')";
    let writeRefused: Stage1Result['standby']['writeRefused'] = null;
    try {
      await app2.query(refusedSql);
    } catch (e) {
      writeRefused = { sql: refusedSql, message: (e as Error).message, sqlstate: sqlState(e) ?? null };
    }

    // Freshness: commit on pg1, poll pg2 until the row is there.
    t = performance.now();
    const fresh = await app1.query<{ id: string }>(
      `INSERT INTO orders (id, customer_id, session, amount)
       SELECT coalesce(max(id), 0) + 1, 1, 'stage1-fresh', 1.00 FROM orders RETURNING id::text`,
    );
    const commitMs = ms(t);
    const orderId = fresh.rows[0]!.id;
    const tv = performance.now();
    let visibleAfterMs: number | null = null;
    let polls = 0;
    while (performance.now() - tv < 5000) {
      polls++;
      const r = await app2.query('SELECT 1 FROM orders WHERE id = $1', [orderId]);
      if (r.rowCount) {
        visibleAfterMs = ms(tv);
        break;
      }
      await sleep(1);
    }
    const counts2 = await counts(app2);
    const max1 = (await app1.query<{ m: string }>('SELECT max(id)::text AS m FROM orders')).rows[0]?.m;
    const max2 = (await app2.query<{ m: string }>('SELECT max(id)::text AS m FROM orders')).rows[0]?.m;

    const replication = (
      await admin1.query<Row>(
        `SELECT application_name, client_addr::text, state, sync_state, sent_lsn::text, replay_lsn::text,
                write_lag::text, flush_lag::text, replay_lag::text
         FROM pg_stat_replication ORDER BY application_name`,
      )
    ).rows;
    const walReceiver = (
      await admin2.query<Row>(
        `SELECT status, sender_host, sender_port::text, received_tli::text, flushed_lsn::text, latest_end_lsn::text,
                slot_name, to_char(last_msg_receipt_time, 'HH24:MI:SS.MS') AS last_msg_receipt
         FROM pg_stat_wal_receiver`,
      )
    ).rows;

    return {
      primary: {
        host: 'pg1',
        address: lab.hosts.pg1.address,
        inRecovery: info1.r,
        synchronousCommit: info1.sc,
        synchronousStandbyNames: info1.ssn,
        inserted: { customerId: cust.rows[0]!.id, orderId: ord.rows[0]!.id, commitMs: insertMs },
        counts: counts1,
        latestOrders: latest.rows,
      },
      standby: {
        host: 'pg2',
        address: lab.hosts.pg2.address,
        inRecovery: info2.r,
        counts: counts2,
        writeRefused,
      },
      freshness: { orderId, commitMs, visibleAfterMs, polls, sameMaxOrderId: max1 === max2 },
      replication,
      walReceiver,
      waitedForStreamingMs,
    };
  } finally {
    await Promise.all([admin1, app1, admin2, app2].map((c) => closeClient(c)));
  }
}

/** Runs collectStage1 inside the lab's client host and returns its result. */
export async function showStage1(lab: Lab): Promise<Stage1Result> {
  const r = await run(hostArgv(lab, 'client', selfArgv('lab', 'stage1-json', '--prefix', lab.prefix)), {
    timeoutMs: 60_000,
    allowFailure: true,
  });
  if (r.code !== 0) {
    const lines = (r.stderr || r.stdout).trim().split('\n');
    const msg = lines.find((l) => /error/i.test(l)) ?? lines.slice(-1)[0] ?? `exit ${r.code}`;
    throw new Error(`stage 1 on the client host failed: ${msg.replace(/^error:\s*(Error:\s*)?/, '')}`);
  }
  return JSON.parse(r.stdout) as Stage1Result;
}

function table(rows: Row[]): string {
  if (rows.length === 0) return '  (no rows)';
  const head = Object.keys(rows[0]!);
  const t = new Table({ head, style: { head: [], border: [] } });
  for (const r of rows) t.push(head.map((k) => r[k] ?? ''));
  return t.toString();
}

export function formatStage1(s: Stage1Result): string {
  const ok = (b: boolean) => (b ? pc.green('yes') : pc.red('NO'));
  const p = s.primary;
  const sb = s.standby;
  const f = s.freshness;
  const lines = [
    pc.bold('Stage 1: primary + hot standby, seen from the client host'),
    '',
    pc.bold(`Primary ${p.host} (${p.address}): read/write`),
    `  pg_is_in_recovery() = ${p.inRecovery}; synchronous_commit = ${p.synchronousCommit}; synchronous_standby_names = '${p.synchronousStandbyNames}'`,
    `  one transaction: INSERT customer ${p.inserted.customerId} + order ${p.inserted.orderId}, COMMIT (${p.inserted.commitMs.toFixed(2)} ms)`,
    `  customers: ${p.counts.customers} rows, orders: ${p.counts.orders} rows; latest orders:`,
    table(p.latestOrders),
    '',
    pc.bold(`Standby ${sb.host} (${sb.address}): read-only`),
    `  pg_is_in_recovery() = ${sb.inRecovery}; reads work: customers ${sb.counts.customers} rows, orders ${sb.counts.orders} rows (read after the freshness check below)`,
    `  ${sb.writeRefused?.sql ?? '(write)'}`,
    sb.writeRefused
      ? `  -> ${pc.red(`ERROR:  ${sb.writeRefused.message}`)} (SQLSTATE ${sb.writeRefused.sqlstate})`
      : `  -> ${pc.red('the write was NOT refused')}`,
    '',
    pc.bold('The standby is current'),
    `  order ${f.orderId} committed on pg1 in ${f.commitMs.toFixed(2)} ms; visible on pg2 ${
      f.visibleAfterMs === null
        ? pc.red('not within 5 s')
        : `${f.visibleAfterMs.toFixed(2)} ms after the commit returned`
    } (${f.polls} poll${f.polls === 1 ? '' : 's'})`,
    `  same newest order on both: ${ok(f.sameMaxOrderId)}`,
    '',
    pc.bold('pg_stat_replication on pg1'),
    table(s.replication),
    pc.bold('pg_stat_wal_receiver on pg2'),
    table(s.walReceiver),
  ];
  return lines.join('\n');
}
