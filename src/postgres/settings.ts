// The PostgreSQL settings pgarbiter owns. They live in `pgarbiter.conf` (included from
// postgresql.conf) and are rewritten after every initdb, base backup and rewind, because those
// copy the source node's files (research: pitfall 5).
import { join, resolve } from 'node:path';
import { type Config, hostOf } from '../config.js';
import { type PgSsl, sslConninfo } from './client.js';

/** Where PostgreSQL's copy of the member's certificate, key and the CA live: beside the data
 *  directory (not in it: base backups and rewinds copy the data directory, keys included), owned
 *  by the postgres user, key mode 0600 as PostgreSQL demands. */
export function pgTlsDir(cfg: Pick<Config, 'postgres'>): string {
  return `${resolve(cfg.postgres.data_dir)}-tls`;
}
export const PG_TLS_FILES = { cert: 'server.crt', key: 'server.key', ca: 'ca.crt' } as const;

/** How the agents, pg_basebackup, pg_rewind and the walreceiver connect to a peer's server:
 *  TLS, the peer's certificate checked against the cluster CA and its address. */
export function peerSsl(cfg: Pick<Config, 'postgres'>): PgSsl {
  return { mode: 'verify-full', rootCert: join(pgTlsDir(cfg), PG_TLS_FILES.ca) };
}

/** Conninfo options that notice a peer gone in seconds on an open connection: keepalives (a probe
 *  of a connection the peer no longer has is answered by a reset) and tcp_user_timeout (data we
 *  sent stays unacknowledged). Without them a connection whose far end vanished during a cut
 *  waits for the kernel's two-hour keepalive: a soak saw pg_rewind hang that way. */
export const DEAD_PEER_LIBPQ =
  'keepalives=1 keepalives_idle=1 keepalives_interval=1 keepalives_count=3 tcp_user_timeout=4000';

/** Conninfo options that bound how fast a dead peer is noticed by libpq and the walreceiver:
 *  the walreceiver ignores connect_timeout, only tcp_user_timeout and keepalives bound it. */
export const FAST_LIBPQ = `connect_timeout=2 ${DEAD_PEER_LIBPQ}`;

export function slotName(node: string): string {
  return `pgarbiter_${node.replace(/-/g, '_')}`;
}

export function quoteConf(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** libpq keyword value quoting. */
export function quoteConninfo(value: string): string {
  return /^[A-Za-z0-9_.,/:-]+$/.test(value)
    ? value
    : `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export function primaryConninfo(cfg: Config, primaryHost: string): string {
  const pg = cfg.postgres;
  return [
    `host=${quoteConninfo(primaryHost)}`,
    `port=${pg.port}`,
    `user=${quoteConninfo(pg.replication_user)}`,
    `password=${quoteConninfo(pg.replication_password)}`,
    `application_name=${cfg.node}`,
    ...sslConninfo(peerSsl(cfg)),
    FAST_LIBPQ,
  ].join(' ');
}

/**
 * Whether this synchronous_commit mode makes a commit wait for the synchronous standby (on,
 * remote_write, remote_apply), so that an acknowledged commit survives a failover to it; off and
 * local do not. Takes the setting as PostgreSQL prints it or as a config names it (case and spaces
 * ignored). The one place that says which modes promise no loss: the agent, the checker, the
 * scenarios, the demo and the tests ask it.
 */
export function isSyncMode(synchronousCommit: string): boolean {
  return SYNC_WAITING_MODES.has(synchronousCommit.trim().toLowerCase());
}

const SYNC_WAITING_MODES: ReadonlySet<string> = new Set(['on', 'remote_write', 'remote_apply']);

/** synchronous_standby_names when the peer is a synchronous standby. Both names are listed so the
 *  same value is right whichever node is primary (a node never waits for itself). */
export function syncStandbyNames(cfg: Config): string {
  return `FIRST 1 (${cfg.nodes.map((n) => `"${n.name}"`).join(', ')})`;
}

/**
 * The node-owned settings. Replication timeouts are deliberately short so a dead peer is
 * noticed within a few seconds (measured: walreceiver ~4.5 s at wal_receiver_timeout=5s); the
 * agents' own probes, not these, drive failover.
 */
export function nodeSettings(cfg: Config, standbyOf?: string): Record<string, string> {
  const pg = cfg.postgres;
  const s: Record<string, string> = {
    listen_addresses: quoteConf('*'),
    port: String(pg.port),
    unix_socket_directories: quoteConf(pg.socket_dir),
    cluster_name: quoteConf(cfg.node),
    // The node's own address, for clients that reach it through the VIP (where
    // inet_server_addr() is the VIP): the writer's ledger names the node that acknowledged.
    'pgarbiter.node_host': quoteConf(hostOf(cfg, cfg.node)),
    wal_level: 'replica',
    max_wal_senders: '10',
    max_replication_slots: '10',
    // A dead standby must not fill the disk through its slot.
    max_slot_wal_keep_size: quoteConf('2GB'),
    // A rewound old primary replays from the last common checkpoint, up to max_wal_size before
    // the fork: keep that much WAL on both nodes, or the rewind fails and a base backup follows.
    wal_keep_size: quoteConf('1GB'),
    max_wal_size: quoteConf('1GB'),
    wal_log_hints: 'on', // pg_rewind needs it (data checksums are on as well)
    full_page_writes: 'on',
    hot_standby: 'on',
    hot_standby_feedback: 'on',
    wal_sender_timeout: quoteConf('5s'),
    wal_receiver_timeout: quoteConf('5s'),
    wal_receiver_status_interval: quoteConf('1s'),
    // A promote request that meets the startup process between two tries of the WAL sources
    // waits out the rest of this interval after the last failed try: in a switchover that is the
    // old primary's shutdown, ~0.1 s before the promotion (measured: up to 1 s at 1s, 0.19 s at
    // 200ms). The cost: while the primary is unreachable, a standby tries it 10 times a second.
    wal_retrieve_retry_interval: quoteConf('100ms'),
    tcp_keepalives_idle: '2',
    tcp_keepalives_interval: '1',
    tcp_keepalives_count: '3',
    tcp_user_timeout: '4000',
    synchronous_commit: pg.synchronous_commit,
    password_encryption: 'scram-sha-256',
    log_line_prefix: quoteConf('%m [%p] %q%u@%d '),
    log_connections: 'off',
    ssl: 'on',
    ssl_cert_file: quoteConf(join(pgTlsDir(cfg), PG_TLS_FILES.cert)),
    ssl_key_file: quoteConf(join(pgTlsDir(cfg), PG_TLS_FILES.key)),
    ssl_min_protocol_version: quoteConf('TLSv1.2'),
  };
  if (standbyOf) {
    s.primary_conninfo = quoteConf(primaryConninfo(cfg, standbyOf));
    s.primary_slot_name = quoteConf(slotName(cfg.node));
    s.recovery_target_timeline = quoteConf('latest');
  }
  return s;
}

export function renderConf(settings: Record<string, string>): string {
  const lines = Object.entries(settings).map(([k, v]) => `${k} = ${v}`);
  return `# Written by pgarbiter: node-specific settings. Edits are overwritten.\n${lines.join('\n')}\n`;
}

export function renderHba(cfg: Config): string {
  const pg = cfg.postgres;
  return [
    '# Written by pgarbiter. Local socket: its directory is readable only by postgres and root.',
    '# Over the network only TLS (hostssl): replication, the admin role and the app roles alike;',
    '# a plain connection matches no line and is refused.',
    'local   all           all                        trust',
    'host    all           all           127.0.0.1/32 scram-sha-256',
    `hostssl replication   ${pg.replication_user}  ${pg.allowed_cidr}  scram-sha-256`,
    `hostssl all           all           ${pg.allowed_cidr}  scram-sha-256`,
    '',
  ].join('\n');
}
