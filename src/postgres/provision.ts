// `pgarbiter init`: bootstraps this node. On the initial primary: initdb, node config, start,
// roles. On the other node: base backup from the primary, standby config, start as hot standby.
// The demo's role and tables are the workload's (workload/schema.ts: createDemoApp).
// Idempotent: a node that already has data is only started.
import type { Config } from '../config.js';
import { hostOf, otherNode } from '../config.js';
import { poll } from '../util/poll.js';
import { closeClient, makeClient, queryOnce } from './client.js';
import type { PgControl } from './control.js';
import { slotName } from './settings.js';

export const sqlLiteral = (s: string) => `'${s.replace(/'/g, "''")}'`;
export const sqlIdent = (s: string) => `"${s.replace(/"/g, '""')}"`;

export interface InitOptions {
  progress?: (msg: string) => void;
  waitPrimaryS?: number;
}

export function initialPrimary(cfg: Config): string {
  return cfg.initial_primary ?? cfg.nodes[0]!.name;
}

export async function initNode(
  ctl: PgControl,
  opts: InitOptions = {},
): Promise<'primary' | 'standby' | 'existing'> {
  const cfg = ctl.cfg;
  const say = opts.progress ?? (() => {});
  if (!cfg.nodes.some((n) => n.name === cfg.node))
    throw new Error(`init runs on a database node, not on ${cfg.node}`);
  if (ctl.hasData()) {
    if (!(await ctl.isRunning())) {
      say(`${cfg.node}: data directory exists; starting PostgreSQL`);
      await ctl.start();
    } else say(`${cfg.node}: already initialised and running`);
    return 'existing';
  }
  if (initialPrimary(cfg) === cfg.node) {
    say(`${cfg.node}: initdb (data checksums on, so pg_rewind works)`);
    await ctl.initdb();
    ctl.writeNodeConfig();
    say(`${cfg.node}: starting PostgreSQL as primary`);
    await ctl.start();
    await createRoles(ctl);
    return 'primary';
  }
  const primary = otherNode(cfg, cfg.node);
  const primaryHost = hostOf(cfg, primary.name);
  say(`${cfg.node}: waiting for primary ${primary.name} (${primaryHost})`);
  await waitForServer(ctl, primaryHost, (opts.waitPrimaryS ?? 30) * 1000);
  say(`${cfg.node}: pg_basebackup from ${primary.name}`);
  await ctl.baseBackup(primaryHost);
  ctl.writeNodeConfig(primaryHost);
  say(`${cfg.node}: starting PostgreSQL as hot standby of ${primary.name}`);
  await ctl.start();
  return 'standby';
}

async function waitForServer(ctl: PgControl, host: string, timeoutMs: number): Promise<void> {
  const r = await poll(() => queryOnce(ctl.remote(host, 1000), 'SELECT 1'), timeoutMs, 300);
  if (!r.ok) throw new Error(`primary at ${host} not reachable within ${timeoutMs / 1000} s: ${r.lastError}`);
}

async function createRoles(ctl: PgControl): Promise<void> {
  const pg = ctl.pg;
  const client = makeClient(ctl.local());
  await client.connect();
  try {
    await client.query(
      `CREATE ROLE ${sqlIdent(pg.admin_user)} LOGIN SUPERUSER PASSWORD ${sqlLiteral(pg.admin_password)}`,
    );
    await client.query(
      `CREATE ROLE ${sqlIdent(pg.replication_user)} LOGIN REPLICATION PASSWORD ${sqlLiteral(pg.replication_password)}`,
    );
    // The standby's slot keeps the WAL it needs (bounded by max_slot_wal_keep_size).
    await client.query('SELECT pg_create_physical_replication_slot($1, true)', [
      slotName(otherNode(ctl.cfg, ctl.cfg.node).name),
    ]);
  } finally {
    await closeClient(client);
  }
}
