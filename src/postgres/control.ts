// PostgreSQL mechanics for one node: pg_ctl, initdb, pg_basebackup, pg_rewind, config files.
// Runs on "this machine" (inside its namespace in the lab); binaries run as the postgres user.
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.js';
import { tlsMaterial } from '../tls/material.js';
import { asUser, type RunResult, run } from '../util/exec.js';
import { osUserIds } from '../util/os-user.js';
import { pollUntil } from '../util/poll.js';
import { type ConnOptions, queryOnce, sslConninfo } from './client.js';
import {
  DEAD_PEER_LIBPQ,
  nodeSettings,
  PG_TLS_FILES,
  peerSsl,
  pgTlsDir,
  renderConf,
  renderHba,
} from './settings.js';

const CONF_FILE = 'pgarbiter.conf';

export interface ControlData {
  state: string;
  timeline: number;
  checkpointLsn: string;
  systemIdentifier: string;
}

export class PgControl {
  constructor(readonly cfg: Config) {}

  get pg() {
    return this.cfg.postgres;
  }

  private bin(name: string): string {
    return join(this.pg.bin_dir, name);
  }

  private osIds(): { uid: number; gid: number } | null {
    return process.getuid?.() === 0 ? osUserIds(this.pg.os_user) : null;
  }

  /** Creates a directory owned by the postgres OS user. */
  ensureDir(path: string, mode = 0o700): void {
    mkdirSync(path, { recursive: true, mode });
    const ids = this.osIds();
    if (ids) chownSync(path, ids.uid, ids.gid);
  }

  private writeOwned(path: string, text: string, mode = 0o600): void {
    writeFileSync(path, text, { mode });
    chmodSync(path, mode);
    const ids = this.osIds();
    if (ids) chownSync(path, ids.uid, ids.gid);
  }

  /** PostgreSQL's copy of the member's TLS files (pgTlsDir), from the config's tls: section. */
  installTls(): void {
    const m = tlsMaterial(this.cfg.tls);
    const dir = pgTlsDir(this.cfg);
    this.ensureDir(dir);
    this.writeOwned(join(dir, PG_TLS_FILES.cert), m.cert, 0o600);
    this.writeOwned(join(dir, PG_TLS_FILES.key), m.key, 0o600);
    this.writeOwned(join(dir, PG_TLS_FILES.ca), m.ca, 0o644);
  }

  /** libpq conninfo to a peer's server: TLS verified against the cluster CA (verify-full). */
  private peerConninfo(host: string, user: string, extra: string[]): string {
    return [
      `host=${host}`,
      `port=${this.pg.port}`,
      `user=${user}`,
      ...extra,
      ...sslConninfo(peerSsl(this.cfg)),
    ].join(' ');
  }

  runAsPg(argv: string[], timeoutMs = 60_000, extraEnv: Record<string, string> = {}): Promise<RunResult> {
    return run(asUser(this.pg.os_user, argv), {
      timeoutMs,
      env: { ...process.env, ...extraEnv },
      allowFailure: true,
    });
  }

  private async must(argv: string[], timeoutMs = 60_000, extraEnv: Record<string, string> = {}) {
    const r = await this.runAsPg(argv, timeoutMs, extraEnv);
    if (r.code !== 0) {
      const tail = (r.stderr || r.stdout).trim().split('\n').slice(-4).join(' | ');
      throw new Error(`${argv[0]?.split('/').pop()} failed (exit ${r.code}): ${tail}`);
    }
    return r;
  }

  hasData(): boolean {
    return existsSync(join(this.pg.data_dir, 'PG_VERSION'));
  }

  /** Connection to the local server over its private unix socket (trust, as postgres). */
  local(queryTimeoutMs = 5000): ConnOptions {
    return {
      host: this.pg.socket_dir,
      port: this.pg.port,
      user: 'postgres',
      applicationName: 'pgarbiter-agent',
      connectTimeoutMs: 2000,
      queryTimeoutMs,
      // Agent sessions never wait for the standby (research: a sync-rep wait ignores timeouts).
      options: { synchronous_commit: 'local' },
    };
  }

  /** Admin connection to another node's server over TCP. */
  remote(host: string, timeoutMs = 2000): ConnOptions {
    return {
      host,
      port: this.pg.port,
      user: this.pg.admin_user,
      password: this.pg.admin_password,
      applicationName: `pgarbiter-${this.cfg.node}`,
      connectTimeoutMs: timeoutMs,
      queryTimeoutMs: timeoutMs,
      options: { synchronous_commit: 'local' },
      ssl: { mode: 'verify-full', rootCert: this.cfg.tls.ca_file },
    };
  }

  /** Is the postmaster of postmaster.pid alive? Read from /proc, not `pg_ctl status`: a killed
   *  postmaster stays a zombie until PID 1 reaps it (seconds, measured), and kill -0 counts it. */
  async isRunning(): Promise<boolean> {
    let pid: number;
    try {
      pid = Number(readFileSync(join(this.pg.data_dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      return false;
    }
    if (!Number.isInteger(pid) || pid <= 0) return false;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      return state !== 'Z' && state !== 'X' && stat.includes('(postgres)');
    } catch {
      return false;
    }
  }

  async initdb(): Promise<void> {
    this.ensureDir(this.pg.data_dir);
    await this.must(
      [
        this.bin('initdb'),
        '-D',
        this.pg.data_dir,
        '-U',
        'postgres',
        '-E',
        'UTF8',
        '--locale=C',
        '--data-checksums',
        '-A',
        'trust',
      ],
      120_000,
    );
  }

  /**
   * Writes the node-owned files: pgarbiter.conf, pg_hba.conf, the include line, standby.signal
   * for a standby, and an empty postgresql.auto.conf (base backups and rewinds copy the source's,
   * including its primary_conninfo and synchronous_standby_names).
   */
  writeNodeConfig(standbyOf?: string): void {
    const d = this.pg.data_dir;
    this.installTls();
    this.ensureDir(this.pg.socket_dir);
    this.ensureDir(join(this.pg.log_file, '..'), 0o755);
    this.writeOwned(join(d, CONF_FILE), renderConf(nodeSettings(this.cfg, standbyOf)));
    this.writeOwned(join(d, 'pg_hba.conf'), renderHba(this.cfg));
    const mainConf = join(d, 'postgresql.conf');
    const text = existsSync(mainConf) ? readFileSync(mainConf, 'utf8') : '';
    if (!text.includes(`include_if_exists = '${CONF_FILE}'`))
      this.writeOwned(mainConf, `${text}\n# pgarbiter's node settings\ninclude_if_exists = '${CONF_FILE}'\n`);
    this.writeOwned(
      join(d, 'postgresql.auto.conf'),
      '# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n',
    );
    const signal = join(d, 'standby.signal');
    if (standbyOf) this.writeOwned(signal, '');
    else rmSync(signal, { force: true });
  }

  async start(timeoutS = 60): Promise<void> {
    this.ensureDir(this.pg.socket_dir);
    await this.must(
      [
        this.bin('pg_ctl'),
        '-D',
        this.pg.data_dir,
        '-l',
        this.pg.log_file,
        '-w',
        '-t',
        String(timeoutS),
        'start',
      ],
      (timeoutS + 5) * 1000,
    );
  }

  /** Stops the server and returns once its postmaster is gone. We wait ourselves (`pg_ctl -W`,
   *  then a 10 ms look at /proc) rather than with `pg_ctl -w`, which looks every 100 ms: a
   *  switchover's write pause includes this wait (bench/README.md, bench/light). */
  async stop(mode: 'fast' | 'immediate' = 'fast', timeoutS = 30): Promise<void> {
    if (!(await this.isRunning())) return;
    const r = await this.runAsPg(
      [this.bin('pg_ctl'), '-D', this.pg.data_dir, '-m', mode, '-W', 'stop'],
      (timeoutS + 5) * 1000,
    );
    const gone =
      r.code === 0 && (await pollUntil(async () => !(await this.isRunning()), timeoutS * 1000, 10));
    if (gone) return;
    if (mode === 'fast') await this.stop('immediate', 10);
    else
      throw new Error(
        `pg_ctl stop failed: ${r.code === 0 ? `still running after ${timeoutS} s` : r.stderr.trim()}`,
      );
  }

  /** Promotes the standby and returns once `leftRecovery` holds: the caller's
   *  `pg_is_in_recovery()` on a connection it keeps, asked every 10 ms (`pg_ctl promote -w` reads
   *  the control file every 100 ms; a pg_controldata process per look cost more than the query).
   *  A failed look counts as not yet. */
  async promote(leftRecovery: () => Promise<boolean>, timeoutS = 30): Promise<void> {
    await this.must([this.bin('pg_ctl'), '-D', this.pg.data_dir, '-W', 'promote'], 15_000);
    const done = await pollUntil(leftRecovery, timeoutS * 1000, 10);
    if (!done) throw new Error(`pg_ctl promote: the server did not leave recovery within ${timeoutS} s`);
  }

  async controlData(): Promise<ControlData> {
    const r = await this.must([this.bin('pg_controldata'), this.pg.data_dir], 10_000, { LC_ALL: 'C' });
    const get = (label: string) => {
      const line = r.stdout.split('\n').find((l) => l.startsWith(`${label}:`));
      return line ? line.slice(label.length + 1).trim() : '';
    };
    return {
      state: get('Database cluster state'),
      timeline: Number(get("Latest checkpoint's TimeLineID")),
      checkpointLsn: get('Latest checkpoint location'),
      systemIdentifier: get('Database system identifier'),
    };
  }

  /** Replaces the data directory with a fresh base backup of the primary at `host`. */
  async baseBackup(host: string, timeoutS = 600): Promise<void> {
    rmSync(this.pg.data_dir, { recursive: true, force: true });
    this.ensureDir(this.pg.data_dir);
    this.installTls();
    await this.must(
      [
        this.bin('pg_basebackup'),
        '-D',
        this.pg.data_dir,
        '-X',
        'stream',
        '-c',
        'fast',
        '-d',
        this.peerConninfo(host, this.pg.replication_user, [
          `application_name=${this.cfg.node}`,
          'connect_timeout=5',
          DEAD_PEER_LIBPQ,
        ]),
      ],
      timeoutS * 1000,
      { PGPASSWORD: this.pg.replication_password },
    );
  }

  /** pg_rewind from the new primary. Returns its output; throws on failure. */
  async rewind(sourceHost: string, timeoutS = 600): Promise<string> {
    this.installTls();
    const src = this.peerConninfo(sourceHost, this.pg.admin_user, [
      'dbname=postgres',
      'connect_timeout=5',
      DEAD_PEER_LIBPQ,
    ]);
    const r = await this.must(
      [this.bin('pg_rewind'), '-D', this.pg.data_dir, `--source-server=${src}`, '--progress'],
      timeoutS * 1000,
      { PGPASSWORD: this.pg.admin_password },
    );
    return `${r.stdout}${r.stderr}`;
  }

  /**
   * Transactions committed in this node's WAL after `fromLsn` on timeline `tli` that changed a
   * user table (relfilenode >= 16384), and the rows they inserted: what a rewind discards.
   * Catalog-only transactions (autovacuum's ANALYZE, say) are not counted.
   */
  async countCommitsAfter(fromLsn: string, tli: number): Promise<{ commits: number; inserts: number }> {
    const r = await this.runAsPg(
      [this.bin('pg_waldump'), '-p', join(this.pg.data_dir, 'pg_wal'), '-s', fromLsn, '-t', String(tli)],
      60_000,
    );
    const userXids = new Set<string>();
    const insertsByXid = new Map<string, number>();
    let commits = 0;
    let inserts = 0;
    for (const line of r.stdout.split('\n')) {
      const xid = /\btx:\s+(\d+)/.exec(line)?.[1];
      if (!xid) continue;
      const rel = /rel \d+\/\d+\/(\d+)/.exec(line);
      if (/rmgr: Heap2? /.test(line) && rel && Number(rel[1]) >= 16384) {
        userXids.add(xid);
        if (/desc: (INSERT|MULTI_INSERT)/.test(line)) insertsByXid.set(xid, (insertsByXid.get(xid) ?? 0) + 1);
      } else if (/rmgr: Transaction .*desc: COMMIT/.test(line) && userXids.has(xid)) {
        commits++;
        inserts += insertsByXid.get(xid) ?? 0;
      }
    }
    return { commits, inserts };
  }

  async query<R extends Record<string, unknown>>(sql: string, params: unknown[] = [], timeoutMs = 5000) {
    return queryOnce<R & import('pg').QueryResultRow>(this.local(timeoutMs), sql, params);
  }
}
