// Client routing on a real lab: Debian's HAProxy on the client host, health-checking each
// agent's /primary and /replica, and libpq multi-host (target_session_attrs=read-write) in psql.
// After an automatic failover the read-write port must follow the new primary within a bounded
// time, and a writer that only knows HAProxy's port loses no acknowledged row (remote_apply).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import {
  haproxyConfigPath,
  haproxyDsn,
  haproxyRoutesTo,
  haproxyServers,
  startHaproxy,
  stopHaproxy,
} from '../../src/lab/haproxy.js';
import { clientSql, heal, isolate, type Lab, labSslConninfo } from '../../src/lab/index.js';
import type { HostName } from '../../src/lab/topology.js';
import {
  arbiterView,
  checkLabLedger,
  grantTimeOf,
  multiHostDsn,
  startLabWriter,
  waitFor,
  waitHealthy,
} from '../../src/scenario/lab-run.js';
import { sleep } from '../../src/util/exec.js';
import { ackedBy, ledgerTxs } from '../../src/workload/ledger.js';
import { labIdentity, needsRoot, useLab } from './fixture.js';

const LAB = labIdentity({ prefix: 'pgrt', subnet: '10.213.90.0/24' });
let lab: Lab;

const addr = (h: string) => lab.hosts[h as HostName].address;

const acksFrom = (ledger: string, address: string) =>
  ledgerTxs(ledger).filter((tx) => ackedBy(tx, address)).length;

/** Waits until HAProxy routes read-write to exactly `primary` and read-only to exactly `standby`. */
async function waitRouting(primary: string, standby: string | null, timeoutMs: number) {
  return waitFor(
    `HAProxy routing rw->${primary} ro->${standby ?? '-'}`,
    timeoutMs,
    async () => {
      const rw = await haproxyRoutesTo(lab, 'primary');
      const ro = await haproxyRoutesTo(lab, 'replicas');
      const okRo = standby === null || (ro.length === 1 && ro[0] === standby);
      return rw.length === 1 && rw[0] === primary && okRo ? Date.now() : undefined;
    },
    100,
  );
}

describe('client routing: HAProxy and libpq multi-host', { skip: needsRoot, timeout: 300_000 }, () => {
  useLab(LAB, {
    sync: 'remote_apply',
    timing: 'default',
    ready: async (l) => {
      lab = l;
      await startHaproxy(lab);
    },
    teardown: stopHaproxy,
  });

  test('HAProxy: writes through :5000 land on the primary, reads through :5001 on the standby', async () => {
    const h = await waitHealthy(lab);
    assert.match(readFileSync(haproxyConfigPath(lab), 'utf8'), /option httpchk GET \/primary\?hold/);
    await waitRouting(h.primary, h.standby, 10_000);
    const servers = await haproxyServers(lab);
    assert.equal(servers.find((s) => s.proxy === 'primary' && s.server === h.standby)?.status, 'DOWN');
    assert.equal(servers.find((s) => s.proxy === 'replicas' && s.server === h.primary)?.status, 'DOWN');

    const rw = haproxyDsn(lab, 'rw');
    await clientSql(
      lab,
      { conninfo: rw },
      'CREATE TABLE IF NOT EXISTS routing_probe (id serial PRIMARY KEY, server text NOT NULL)',
    );
    const wrote = (
      await clientSql(
        lab,
        { conninfo: rw },
        'INSERT INTO routing_probe (server) VALUES (host(inet_server_addr())) RETURNING server, pg_is_in_recovery()',
      )
    ).rows;
    assert.deepEqual(wrote[0], [addr(h.primary), 'f'], 'the write went to the primary');

    const ro = haproxyDsn(lab, 'ro');
    const read = (
      await clientSql(
        lab,
        { conninfo: ro },
        'SELECT host(inet_server_addr()), pg_is_in_recovery(), count(*) FROM routing_probe',
      )
    ).rows;
    assert.deepEqual(read[0], [addr(h.standby), 't', '1'], 'the read went to the standby, which has the row');
    await assert.rejects(
      clientSql(
        lab,
        { conninfo: ro.replace('target_session_attrs=read-only', 'target_session_attrs=any') },
        "INSERT INTO routing_probe (server) VALUES ('x')",
      ),
      /read-only transaction/,
      'the read-only port does not take writes',
    );
  });

  test('libpq multi-host in psql: target_session_attrs=read-write finds the primary in either order', async () => {
    const h = await waitHealthy(lab);
    const dsn = multiHostDsn(lab);
    assert.match(dsn, /host=[\d.]+,[\d.]+ .*target_session_attrs=read-write/);
    const a = (
      await clientSql(lab, { conninfo: dsn }, 'SELECT host(inet_server_addr()), pg_is_in_recovery()')
    ).rows;
    assert.deepEqual(a[0], [addr(h.primary), 'f']);
    const reversed = `host=${lab.hosts.pg2.address},${lab.hosts.pg1.address} port=5432 user=app dbname=postgres target_session_attrs=read-write ${labSslConninfo(lab)}`;
    const b = (await clientSql(lab, { conninfo: reversed }, 'SELECT host(inet_server_addr())')).rows;
    assert.deepEqual(b[0], [addr(h.primary)]);
    const standby = (
      await clientSql(
        lab,
        { conninfo: dsn.replace('target_session_attrs=read-write', 'target_session_attrs=standby') },
        'SELECT host(inet_server_addr())',
      )
    ).rows;
    assert.deepEqual(standby[0], [addr(h.standby)]);
  });

  test('after an automatic failover :5000 routes to the new primary; a writer through HAProxy loses nothing', async () => {
    const h0 = await waitHealthy(lab);
    await waitRouting(h0.primary, h0.standby, 10_000);
    const ledger = `${lab.dir}/client/routing-${Date.now()}.jsonl`;
    const w = startLabWriter(lab, { ledger, dsn: haproxyDsn(lab, 'rw'), sessions: 4 });
    try {
      await waitFor('acks through HAProxy', 15_000, async () =>
        acksFrom(ledger, addr(h0.primary)) > 50 ? true : undefined,
      );
      const cutAt = Date.now();
      await isolate(lab, h0.primary as HostName, 'link-down');
      const promotedAt = await waitFor(
        'the arbiter granting a new term to the standby',
        30_000,
        async () => {
          const rec = (await arbiterView(lab))?.record;
          return rec && rec.term > h0.term && rec.primary === h0.standby ? Date.now() : undefined;
        },
        100,
      );
      const routedAt = await waitRouting(h0.standby, null, 10_000);
      const grantAt = grantTimeOf((await arbiterView(lab))!, h0.term + 1) ?? promotedAt;
      const fromPromotion = Math.max(0, routedAt - grantAt);
      process.stderr.write(
        `routing: term ${h0.term + 1} granted ${grantAt - cutAt} ms after the cut; HAProxy routed writes to ${h0.standby} ` +
          `${routedAt - cutAt} ms after the cut (${fromPromotion} ms after the grant)\n`,
      );
      assert.ok(
        routedAt - cutAt < 20_000,
        `rw port followed the failover within 20 s (${routedAt - cutAt} ms)`,
      );
      assert.ok(fromPromotion < 5000, `rw port followed the grant within 5 s (${fromPromotion} ms)`);

      const wrote = (
        await clientSql(
          lab,
          { conninfo: haproxyDsn(lab, 'rw') },
          'INSERT INTO routing_probe (server) VALUES (host(inet_server_addr())) RETURNING server',
        )
      ).rows;
      assert.deepEqual(wrote[0], [addr(h0.standby)], 'a new write through :5000 lands on the new primary');
      const before = acksFrom(ledger, addr(h0.standby));
      await waitFor('the writer writing to the new primary through HAProxy', 20_000, async () =>
        acksFrom(ledger, addr(h0.standby)) > before + 50 ? true : undefined,
      );
      await sleep(1000);
    } finally {
      await w.stop().catch(() => {});
    }
    const c = await checkLabLedger(lab, ledger);
    const r = c.report;
    process.stderr.write(
      `routing: writer via HAProxy: acknowledged ${r.totals.acknowledged}, lost ${r.lost.count}, unknown ${r.unknown.count} ` +
        `(committed ${r.unknown.committed}, not committed ${r.unknown.notCommitted}), longest gap ${r.longestWriteGap?.ms} ms\n`,
    );
    assert.ok(r.totals.acknowledged > 100);
    assert.equal(r.synchronousCommit, 'remote_apply');
    assert.equal(r.lost.count, 0, `acknowledged rows lost: ${JSON.stringify(r.lost)}`);
    assert.equal(r.torn.count, 0);
    assert.equal(c.exitCode, 0);
    assert.ok(
      acksFrom(ledger, addr(h0.primary)) > 0 && acksFrom(ledger, addr(h0.standby)) > 0,
      'acks on both nodes',
    );

    // The old primary comes back, rejoins as standby, and the read-only port picks it up.
    await heal(lab, h0.primary as HostName);
    const h1 = await waitHealthy(lab, 90_000);
    assert.deepEqual([h1.primary, h1.standby], [h0.standby, h0.primary]);
    await waitRouting(h0.standby, h0.primary, 10_000);
    const read = (
      await clientSql(lab, { conninfo: haproxyDsn(lab, 'ro') }, 'SELECT host(inet_server_addr())')
    ).rows;
    assert.deepEqual(read[0], [addr(h0.primary)], 'reads go to the rejoined old primary');
  });
});
