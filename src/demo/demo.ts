// `pgarbiter demo`: every stage of the lab assignment (seeds/000) on the namespace lab, narrated,
// with the evidence recorded for the report. The cluster is driven only through what a user has:
// the CLI, psql on the client host, the lab's failure commands; the agents do the HA work.
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { SyncCommit, TimingProfile } from '../config.js';
import {
  clientSql,
  formatStage1,
  type IsolateMode,
  type Lab,
  labDown,
  labSslConninfo,
  labUp,
  readLab,
  selfArgv,
  showStage1,
  tcpProbe,
} from '../lab/index.js';
import { HOSTS, type HostName, resolveIdentity } from '../lab/topology.js';
import { isSyncMode } from '../postgres/settings.js';
import {
  checkLabLedger,
  clusterView,
  startLabWriter,
  waitFor,
  waitHealthy,
  waitReplayed,
  writerDsn,
} from '../scenario/lab-run.js';
import { run, sleep } from '../util/exec.js';
import { ackedBy, ledgerTxs } from '../workload/ledger.js';
import { Narrator, printOutcomeHeader } from './narrate.js';
import type { DemoOutcome } from './transcript.js';

export interface DemoOptions {
  prefix?: string;
  subnet?: string;
  mode: IsolateMode;
  manual: boolean;
  sync: SyncCommit;
  timing: TimingProfile;
  keep: boolean;
  reportDir: string;
  sessions: number;
  /** Ctrl-C: the run ends at the next step or wait (the writer is stopped on the way out). */
  signal?: AbortSignal;
}

/** Log lines of `file` written since `sinceMs` (PostgreSQL's or our JSON lines) matching `re`. */
function grepLog(file: string, re: RegExp, sinceMs: number, max = 12): string[] {
  if (!existsSync(file)) return [];
  const lines: string[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    let text = line;
    let t = Number.NaN;
    if (line.startsWith('{')) {
      try {
        const j = JSON.parse(line) as { time: string; msg: string; level: string };
        t = Date.parse(j.time);
        text = `${j.time.slice(11, 23)} ${j.level.toUpperCase().padEnd(5)} ${j.msg}`;
      } catch {
        continue;
      }
    } else {
      const m = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) UTC/.exec(line);
      if (m) t = Date.parse(`${m[1]!.replace(' ', 'T')}Z`);
    }
    if (!(t >= sinceMs - 50)) continue;
    if (re.test(text)) lines.push(text.length > 220 ? `${text.slice(0, 217)}...` : text);
  }
  return lines.slice(-max);
}

/** The demo's psql on the client host: shown to the reader, so a failure is narrated, not thrown. */
const DEMO_PSQL = { applicationName: 'demo-psql', timeoutMs: 20_000, allowFailure: true } as const;

export async function runDemo(opts: DemoOptions): Promise<DemoOutcome> {
  const id = resolveIdentity({ prefix: opts.prefix, subnet: opts.subnet });
  const n = new Narrator(opts.signal);
  const startedAt = Date.now();
  const timings: Record<string, number> = {};
  const reportDir = resolve(opts.reportDir);
  mkdirSync(reportDir, { recursive: true });
  let lab: Lab | undefined;
  let writer: ReturnType<typeof startLabWriter> | undefined;

  const pgarbiter = async (args: string[], show = args.join(' ')) => {
    const t0 = Date.now();
    const r = await run(selfArgv(...args, '--prefix', id.prefix), { timeoutMs: 120_000, allowFailure: true });
    n.command(
      `pgarbiter ${show}`,
      `${r.stdout}${r.code !== 0 ? r.stderr : ''}`,
      Date.now() - t0,
      r.code === 0,
    );
    return r;
  };
  /** psql on the client host, as `pgarbiter lab psql HOST -c SQL` does. */
  const psql = async (host: HostName, sql: string) => {
    const l = lab!;
    const t0 = Date.now();
    const r = await clientSql(l, host, sql, { ...DEMO_PSQL, output: 'table' });
    n.command(
      `pgarbiter lab psql ${host} -c "${sql}"`,
      `${r.stdout}${r.stderr}`,
      Date.now() - t0,
      r.code === 0,
      'client',
    );
    return r;
  };
  /** psql on the client host through HAProxy (5000 read-write, 5001 read-only). */
  const psqlVia = async (port: number, sql: string) => {
    const l = lab!;
    const t0 = Date.now();
    const tls = labSslConninfo(l, 'verify-ca'); // through the proxy: the CA, not the name
    const conninfo = `host=127.0.0.1 port=${port} user=app dbname=postgres ${tls}`;
    const r = await clientSql(l, { conninfo }, sql, { ...DEMO_PSQL, output: 'table' });
    n.command(
      `psql "host=127.0.0.1 port=${port} user=app ${tls}" -c "${sql}"`,
      `${r.stdout}${r.stderr}`,
      Date.now() - t0,
      r.code === 0,
      'client',
    );
    return r;
  };
  const acksFrom = (host: HostName, after = 0) =>
    ledgerTxs(writer!.ledger).filter((a) => ackedBy(a, lab!.hosts[host].address) && a.t > after);

  try {
    // ───────────────────────────── 1
    n.step(
      '1',
      'Configuration: primary + hot standby on identical hosts, a client host',
      "PostgreSQL's own streaming replication between pg1 and pg2; RW on the primary, RO on the standby, standby current.",
    );
    if (readLab(id.prefix))
      n.text(
        `an existing lab "${id.prefix}" is torn down first so the demo starts from pg1 primary, pg2 standby`,
      );
    await labDown(id.prefix);
    const t0 = Date.now();
    const up = await n.waiting('pgarbiter lab up (namespaces, initdb, base backup, agents)', () =>
      labUp({
        prefix: id.prefix,
        subnet: id.subnet,
        sync: opts.sync,
        timing: opts.timing,
        signal: opts.signal,
      }),
    );
    lab = up.lab;
    timings.labUpMs = Date.now() - t0;
    n.command(
      `pgarbiter lab up --sync ${opts.sync} --timing ${opts.timing}`,
      `lab "${lab.prefix}" on ${lab.subnet} ready in ${up.seconds.toFixed(2)} s`,
      timings.labUpMs,
    );
    n.table(
      'hosts ("virtual machines": network namespaces behind one virtual switch)',
      ['host', 'address', 'namespace', 'runs'],
      HOSTS.map((h) => [
        h,
        lab!.hosts[h].address,
        lab!.hosts[h].ns,
        h === 'client'
          ? 'psql, the writer'
          : h === 'arbiter'
            ? 'pgarbiter arbiter'
            : 'PostgreSQL 15 + pgarbiter agent',
      ]),
    );
    // Connectivity between the hosts first (the assignment asks for it): TCP to the agents' port.
    const rows: string[][] = [];
    let allOk = true;
    for (const from of HOSTS)
      for (const to of HOSTS) {
        if (from === to || to === 'client') continue;
        const port = to === 'arbiter' ? 8008 : 5432;
        const r = await tcpProbe(lab, from, lab.hosts[to].address, port);
        allOk &&= r === 'open';
        rows.push([from, `${to} (${lab.hosts[to].address}:${port})`, r]);
      }
    n.table('connectivity: TCP connect from each host', ['from', 'to', 'result'], rows);
    n.check('hosts reach each other over the lab network', allOk, `${rows.length} TCP probes open`);
    await waitHealthy(lab, 30_000);
    const s1t = Date.now();
    const s1 = await showStage1(lab);
    n.command('pgarbiter lab show', formatStage1(s1), Date.now() - s1t, true, 'client');
    n.check(
      'read/write on the primary',
      !s1.primary.inRecovery && s1.primary.inserted.commitMs >= 0,
      `pg1 pg_is_in_recovery()=false; INSERT customer+order committed in ${s1.primary.inserted.commitMs.toFixed(2)} ms`,
    );
    n.check(
      'read-only on the standby: a write is refused',
      s1.standby.writeRefused?.sqlstate === '25006',
      `pg2: "${s1.standby.writeRefused?.message}" (SQLSTATE ${s1.standby.writeRefused?.sqlstate})`,
    );
    n.check(
      'the standby is current',
      s1.freshness.visibleAfterMs !== null && s1.freshness.sameMaxOrderId,
      `order ${s1.freshness.orderId} visible on pg2 ${s1.freshness.visibleAfterMs?.toFixed(2)} ms after COMMIT returned`,
      s1.freshness.visibleAfterMs ?? undefined,
    );
    await pgarbiter(['status']);

    // ───────────────────────────── 2.1
    n.step(
      '2.1',
      'Several client sessions read and write',
      `${opts.sessions} writer sessions (transactions on customers + orders) from the client host, plus reads on both nodes.`,
    );
    const ledger = join(lab.dir, 'client', 'demo-writer.jsonl');
    writer = startLabWriter(lab, { ledger, sessions: opts.sessions, rate: 50 });
    const writerStartedAt = Date.now();
    n.command(
      `PGPASSWORD=… pgarbiter writer --dsn "${writerDsn(lab)}" --sessions ${opts.sessions} --rate 50 --ledger demo-writer.jsonl`,
      '(runs in the background on the client host until the end of the demo)',
      0,
      true,
      'client',
    );
    await n.waiting('writer sessions connecting and writing', () =>
      waitFor('acks from pg1', 20_000, async () => (acksFrom('pg1').length >= 50 ? true : undefined)),
    );
    await sleep(1500);
    await psql(
      'pg1',
      "SELECT application_name, state, backend_type FROM pg_stat_activity WHERE application_name LIKE 'pgarbiter-writer%' ORDER BY 1",
    );
    const sess = await clientSql(
      lab,
      'pg1',
      "SELECT count(DISTINCT application_name) FROM pg_stat_activity WHERE application_name LIKE 'pgarbiter-writer%-s%'",
      DEMO_PSQL,
    );
    const nSessions = Number(sess.stdout.trim());
    n.check(
      'several concurrent client sessions',
      nSessions >= 3,
      `${nSessions} distinct writer sessions in pg1's pg_stat_activity`,
    );
    await psql(
      'pg1',
      'SELECT session, count(*) AS orders, max(created_at)::time(3) AS latest FROM orders GROUP BY session ORDER BY session',
    );
    await psql('pg2', 'SELECT written_on, count(*) AS orders FROM orders GROUP BY written_on ORDER BY 1');
    await psql(
      'pg2',
      'SELECT o.id, c.name, o.amount, o.session FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.created_at DESC LIMIT 5',
    );
    const a21 = acksFrom('pg1').length;
    // Reads through HAProxy's read-only port land on the standby and see the writers' rows.
    await psqlVia(
      5001,
      "SELECT inet_server_addr() AS server, pg_is_in_recovery(), count(*) AS writer_orders FROM orders WHERE session LIKE 'r%'",
    );
    const [[roServer, roRecovery, roRows]] = (
      await clientSql(
        lab,
        'pg2',
        "SELECT inet_server_addr(), pg_is_in_recovery(), count(*) FROM orders WHERE session LIKE 'r%'",
      )
    ).rows as [[string, string, string]];
    n.check(
      'clients write on the primary, reads on the standby',
      a21 > 0 && roRecovery === 't' && Number(roRows) > 0,
      `${a21} transactions acknowledged by pg1 so far; pg2 (${roServer}, in recovery) reads ${roRows} of the writers' orders`,
    );

    // Encrypted: the client's session through HAProxy and the standby's replication stream.
    const sslSql = 'SELECT ssl, version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()';
    const own = await psqlVia(5000, sslSql);
    const repl = await clientSql(
      lab,
      'pg1',
      'SELECT r.application_name, s.ssl, s.version FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)',
      { admin: true },
    );
    const replTls = repl.rows.filter((r) => r[1] === 't');
    n.check(
      'connections are encrypted (TLS, verified against the lab CA)',
      own.code === 0 &&
        /\bt\b.*TLSv1\.[23]/.test(own.stdout) &&
        replTls.length > 0 &&
        replTls.length === repl.rows.length,
      `the client's session: ${/TLSv1\.[23]\S*/.exec(own.stdout)?.[0] ?? 'no TLS'}; replication to ${repl.rows.map((r) => `${r[0]} over ${r[1] === 't' ? r[2] : 'no TLS'}`).join(', ') || 'nobody'} (pg_stat_ssl)`,
    );

    // ───────────────────────────── 2.2
    n.step(
      '2.2',
      `The primary becomes unreachable (${opts.mode === 'link-down' ? 'its interface taken down' : 'moved to an isolated subnet'})`,
      'pg1 is cut off from every other host while its PostgreSQL and agent keep running.',
    );
    if (opts.manual) {
      n.text(
        'manual mode: automatic failover is paused first, so the failover in 2.3 is done by command, as the assignment describes',
      );
      await pgarbiter(['maintenance', 'on']);
    }
    const cutAt = Date.now();
    n.mark(`pg1 isolated (${opts.mode})`, cutAt);
    await pgarbiter(['lab', 'isolate', 'pg1', '--mode', opts.mode]);
    const probe = await tcpProbe(lab, 'client', lab.hosts.pg1.address, 5432);
    n.command(
      `pgarbiter lab exec client -- bash -c 'exec 3<>/dev/tcp/${lab.hosts.pg1.address}/5432'`,
      `pg1:5432 from the client: ${probe}`,
      0,
      probe !== 'open',
      'client',
    );
    n.check('the primary is unreachable', probe !== 'open', `TCP to pg1:5432 from the client: ${probe}`);

    // ───────────────────────────── 2.3
    n.step(
      '2.3',
      'Errors in the logs; failover to the standby; clients read and write again',
      opts.manual
        ? 'The operator promotes pg2 by command.'
        : 'pg2 and the arbiter both lose pg1; pg1 fences itself; the arbiter grants pg2 the next term; pg2 promotes.',
    );
    let grantAt: number;
    if (opts.manual) {
      await n.waiting('the standby noticing the lost primary', () =>
        sleep(opts.timing === 'fast' ? 2500 : 4500),
      );
      await pgarbiter(['failover', '--to', 'pg2', '--force']);
      grantAt = Date.now();
    } else {
      grantAt = await n.waiting('automatic failover', () =>
        waitFor('the promotion grant', 60_000, async () => {
          const v = await clusterView(lab!);
          const ev = v.arbiter.state?.events.find((e) => e.ok && e.term === 2 && e.kind === 'grant');
          return ev ? Date.parse(ev.at) : undefined;
        }),
      );
    }
    n.mark('arbiter grants term 2 to pg2', grantAt);
    const firstAck = await n.waiting('first write acknowledged by pg2', () =>
      waitFor('acks from pg2', 60_000, async () => acksFrom('pg2', cutAt)[0]?.t, 100),
    );
    n.mark('first write on pg2', firstAck);
    timings.failoverGrantMs = grantAt - cutAt;
    timings.failoverFirstWriteMs = firstAck - cutAt;
    await sleep(2000);
    const since = cutAt - 200;
    const pg2PgLines = grepLog(
      join(lab.hosts.pg2.dir, 'postgresql.log'),
      /walreceiver|could not|timeout|terminat|promot|timeline|archive recovery|ready to accept/i,
      since,
    );
    n.log('pg2 postgresql.log (the standby loses its primary, then is promoted)', pg2PgLines);
    const arbiterLines = grepLog(
      join(lab.hosts.arbiter.dir, 'arbiter.log'),
      /NOT reachable|granted|FORCED|promote|maintenance/,
      since,
    );
    n.log('arbiter log', arbiterLines);
    const pg2AgentLines = grepLog(
      join(lab.hosts.pg2.dir, 'agent.log'),
      /lost|PROMOTION|promot|phase|record/,
      since,
    );
    n.log('pg2 agent log', pg2AgentLines);
    const pg1AgentLines = grepLog(join(lab.hosts.pg1.dir, 'agent.log'), /FENCED|lost|phase/, since);
    n.log('pg1 agent log (isolated: it fences itself)', pg1AgentLines);
    const errs = [
      ...new Set(
        ledgerTxs(ledger)
          .filter((a) => a.outcome !== 'ack' && a.t > cutAt && a.error)
          .map((a) => a.error!.slice(0, 160)),
      ),
    ];
    n.log('client errors (writer ledger: failed or unknown transactions after the cut)', errs.slice(0, 8));
    await pgarbiter(['status']);
    await psql(
      'pg2',
      'SELECT written_on, count(*) AS orders, max(created_at)::time(3) AS latest FROM orders GROUP BY written_on ORDER BY 1',
    );
    await psql(
      'pg2',
      "SELECT pg_is_in_recovery(), current_setting('cluster_name') AS node, inet_server_addr()",
    );
    const onPg2 = acksFrom('pg2', cutAt).length;
    const lateOnPg1 = acksFrom('pg1', grantAt).length;
    n.check(
      'failover to the standby',
      onPg2 > 0,
      `term 2 granted ${timings.failoverGrantMs} ms after the cut; first write on pg2 after ${timings.failoverFirstWriteMs} ms`,
      timings.failoverFirstWriteMs,
    );
    n.check('clients read and write again (on pg2)', onPg2 > 0, `${onPg2} transactions acknowledged by pg2`);
    n.check(
      'never two writable primaries',
      lateOnPg1 === 0,
      `${lateOnPg1} writes acknowledged by pg1 after the grant`,
    );
    const decisionsLogged = opts.manual
      ? arbiterLines.some((l) => /FORCED/.test(l))
      : arbiterLines.some((l) => /granted term 2/.test(l)) && pg1AgentLines.some((l) => /FENCED/.test(l));
    n.check(
      'the relevant error messages found in the logs',
      pg2PgLines.length > 0 && decisionsLogged && pg2AgentLines.some((l) => /promot/i.test(l)),
      `standby PostgreSQL: ${pg2PgLines.length} lines; arbiter: ${opts.manual ? 'forced failover' : 'loss confirmed + grant'}; ` +
        `pg1 agent: ${pg1AgentLines.some((l) => /FENCED/.test(l)) ? 'FENCED' : 'no fence line'}; clients: ${errs.length} distinct error${errs.length === 1 ? '' : 's'}`,
    );

    // ───────────────────────────── 3
    n.step(
      '3',
      'Recovery: network back, old primary up to date, original roles restored',
      'pg1 rejoins by itself (pg_rewind), receives every row written in 2.3, then a switchover makes it primary again.',
    );
    if (opts.manual) await pgarbiter(['maintenance', 'off']);
    const healAt = Date.now();
    n.mark('pg1 network restored', healAt);
    await pgarbiter(['lab', 'heal', 'pg1']);
    const h = await n.waiting('pg1 rewinding and rejoining as standby', () => waitHealthy(lab!, 120_000));
    const v3 = await clusterView(lab);
    const rj = v3.nodes.find((x) => x.name === 'pg1')?.state?.lastRejoin;
    n.mark('pg1 streaming again', Date.now());
    timings.rejoinMs = Date.now() - healAt;
    n.log(
      'pg1 agent log (rejoin)',
      grepLog(
        join(lab.hosts.pg1.dir, 'agent.log'),
        /REJOIN|rewind|rejoined|UNFENCED|basebackup|stop old/,
        healAt,
      ),
    );
    await pgarbiter(['status']);
    n.check(
      'the old primary rejoined as a streaming standby',
      h.standby === 'pg1' && !!rj,
      `pg1 rejoined by ${rj?.method} in ${rj?.ms} ms; streaming from pg2`,
      rj?.ms,
    );
    // Every row written in 2.3 is on pg1: everything written on pg2 before the heal, compared
    // once pg1 has replayed past pg2's current position (pg2 keeps taking writes meanwhile).
    await waitReplayed(lab, 'pg2', 'pg1');
    const healTs = new Date(healAt).toISOString();
    const cmpSql =
      `SELECT count(*) AS orders_written_on_pg2_in_2_3, coalesce(sum(id), 0) AS sum_of_ids FROM orders ` +
      `WHERE written_on = 'pg2' AND created_at < '${healTs}'`;
    const onP = await psql('pg2', cmpSql);
    const onS = await psql('pg1', cmpSql);
    const body = (s: string) => s.split('\n').slice(2).join('\n').trim();
    const same =
      onP.code === 0 && onS.code === 0 && body(onP.stdout) !== '' && body(onP.stdout) === body(onS.stdout);
    n.check(
      'the old primary holds every row written during 2.3',
      same,
      `rows written on pg2 before the heal, counted and summed on both: ${body(onP.stdout).replace(/\s+/g, ' ')} vs ${body(onS.stdout).replace(/\s+/g, ' ')}`,
    );
    const swT0 = Date.now();
    n.mark('switchover to pg1', swT0);
    const sw = await pgarbiter(['switchover', '--to', 'pg1']);
    timings.switchoverMs = Date.now() - swT0;
    const h2 = await n.waiting('original roles back', () => waitHealthy(lab!, 60_000));
    const firstOnPg1 = await waitFor(
      'acks from pg1 again',
      30_000,
      async () => acksFrom('pg1', swT0)[0]?.t,
      100,
    );
    const lastOnPg2 =
      acksFrom('pg2', 0)
        .filter((a) => a.t < firstOnPg1)
        .pop()?.t ?? swT0;
    timings.switchoverWritePauseMs = firstOnPg1 - lastOnPg2;
    n.mark('first write on pg1 again', firstOnPg1);
    n.check(
      'original configuration restored (pg1 primary, pg2 standby)',
      sw.code === 0 && h2.primary === 'pg1' && h2.standby === 'pg2',
      `switchover in ${timings.switchoverMs} ms; write pause ${timings.switchoverWritePauseMs} ms`,
      timings.switchoverMs,
    );
    await sleep(2000);
    await pgarbiter(['status']);
    await psql(
      'pg1',
      'SELECT written_on, count(*) AS orders, max(created_at)::time(3) AS latest FROM orders GROUP BY written_on ORDER BY 1',
    );
    await psql('pg2', 'SELECT pg_is_in_recovery(), count(*) AS orders FROM orders');
    const onPg1Again = acksFrom('pg1', firstOnPg1 - 1).length;
    n.check(
      'clients read and write again (on pg1)',
      onPg1Again > 0,
      `${onPg1Again} transactions acknowledged by pg1 after the switchover`,
    );

    // ───────────────────────────── accounting
    n.step(
      'summary',
      'Data-loss accounting and summary',
      'Every acknowledged write of the whole run checked against the primary.',
    );
    const summary = await writer.stop();
    writer = undefined;
    n.text(
      `writer stopped: ${JSON.stringify({ acknowledged: summary.acknowledged, failed: summary.failed, unknown: summary.unknown })}`,
    );
    const chk = await checkLabLedger(lab, ledger);
    copyFileSync(ledger, join(reportDir, 'writer-ledger.jsonl'));
    const r = chk.report;
    n.command(
      'pgarbiter check --ledger demo-writer.jsonl',
      [
        `acknowledged ${r.totals.acknowledged}, failed ${r.totals.failed}, unknown ${r.totals.unknown} (committed ${r.unknown.committed}, not committed ${r.unknown.notCommitted})`,
        `lost (acknowledged but missing): ${r.lost.count}`,
        `longest write gap: ${r.longestWriteGap ? `${r.longestWriteGap.ms} ms` : '-'}`,
      ].join('\n'),
      0,
      chk.exitCode === 0,
      'client',
    );
    const promise = isSyncMode(opts.sync);
    n.check(
      `no acknowledged write lost (synchronous_commit=${opts.sync})`,
      promise ? r.lost.count === 0 : true,
      `${r.lost.count} of ${r.totals.acknowledged} acknowledged rows missing${promise ? '' : ' (this mode does not promise zero)'}`,
    );
    n.endStep();
    const ackSeriesStart = writerStartedAt;
    const ackSeries: number[] = [];
    for (const a of ledgerTxs(ledger)) {
      if (a.outcome !== 'ack') continue;
      const i = Math.floor((a.t - ackSeriesStart) / 1000);
      if (i < 0) continue;
      while (ackSeries.length <= i) ackSeries.push(0);
      ackSeries[i]!++;
    }
    const outcome: DemoOutcome = {
      ok: n.checks.every((c) => c.pass),
      startedAt,
      endedAt: Date.now(),
      options: { ...opts, prefix: id.prefix, subnet: id.subnet },
      steps: n.steps,
      checks: n.checks,
      markers: n.markers,
      ackSeries,
      ackSeriesStart,
      loss: {
        synchronousCommit: opts.sync,
        acknowledged: r.totals.acknowledged,
        failed: r.totals.failed,
        unknown: r.totals.unknown,
        lost: r.lost.count,
        longestWriteGapMs: r.longestWriteGap?.ms ?? null,
      },
      timings,
    };
    printOutcomeHeader(outcome);
    return outcome;
  } finally {
    if (writer) await writer.stop().catch(() => {});
    if (!opts.keep) await labDown(id.prefix).catch(() => {});
  }
}
