// Issue 4 on a real lab: the old primary rejoins by itself (pg_rewind, or a base backup when the
// rewind cannot work), holds every row written meanwhile, and a switchover restores the roles
// without losing an acknowledged write. Three alternating cycles keep slots, pg_hba, timelines.
import assert from 'node:assert/strict';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Lab } from '../../src/lab/index.js';
import {
  clientSql,
  configPath,
  heal,
  isolate,
  startAgent,
  stopDaemon,
  stopPostgres,
} from '../../src/lab/index.js';
import type { HostName } from '../../src/lab/topology.js';
import {
  checkLabLedger,
  cliIn,
  clusterView,
  startLabWriter,
  waitFor,
  waitHealthy,
  waitReplayed,
} from '../../src/scenario/lab-run.js';
import { sleep } from '../../src/util/exec.js';
import { labIdentity, needsRoot, useLab } from './fixture.js';

const LAB = labIdentity({ prefix: 'pgrc', subnet: '10.213.80.0/24' });
let lab: Lab;

async function failoverOf(primary: string, term: number) {
  await isolate(lab, primary as HostName, 'link-down');
  await waitFor('promotion', 30_000, async () => {
    const rec = (await clusterView(lab)).arbiter.state?.record;
    return rec && rec.term > term ? true : undefined;
  });
  await heal(lab, primary as HostName);
}

/** The standby holds every row the primary had committed 2 s ago (the writer keeps writing, so
 *  rows are compared up to a point in time, once the standby replayed past it). */
async function sameData(primary: string, standby: string) {
  const upTo = new Date(Date.now() - 2000).toISOString();
  await waitReplayed(lab, primary as HostName, standby as HostName);
  const q =
    `SELECT (SELECT count(*) FROM customers WHERE created_at < '${upTo}'), ` +
    `(SELECT count(*) FROM orders WHERE created_at < '${upTo}'), (SELECT coalesce(sum(id), 0) FROM orders WHERE created_at < '${upTo}')`;
  const onPrimary = (await clientSql(lab, primary as HostName, q)).rows;
  assert.deepEqual((await clientSql(lab, standby as HostName, q)).rows, onPrimary, 'same rows on both nodes');
  assert.ok(Number(onPrimary[0]![1]) > 0);
}

const timeline = async (host: string) =>
  Number(
    (
      await clientSql(lab, host as HostName, 'SELECT timeline_id FROM pg_control_checkpoint()', {
        admin: true,
      })
    ).rows[0]![0],
  );

describe('recovery: rejoin, switchover, fallback', { skip: needsRoot, timeout: 900_000 }, () => {
  useLab(LAB, {
    sync: 'remote_apply',
    timing: 'default',
    ready: (l) => {
      lab = l;
    },
  });

  test('three cycles of failover -> rejoin -> switchover back, every acknowledged row kept', async () => {
    const w = startLabWriter(lab, { ledger: join(lab.dir, 'client', 'cycles.jsonl') });
    after(() => {
      if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    });
    let lastTli = await timeline('pg1');
    for (let cycle = 1; cycle <= 3; cycle++) {
      const h0 = await waitHealthy(lab);
      await sleep(1000);
      await failoverOf(h0.primary, h0.term);
      const h1 = await waitHealthy(lab, 90_000);
      assert.equal(h1.primary, h0.standby, `cycle ${cycle}: failed over`);
      const v = await clusterView(lab);
      assert.equal(
        v.nodes.find((n) => n.name === h0.primary)?.state?.lastRejoin?.method,
        'rewind',
        'rejoined by pg_rewind',
      );
      await sleep(1000);
      await sameData(h1.primary, h1.standby);
      // Switch back: the original roles return.
      const sw = await cliIn(lab, 'client', ['switchover', '--json', '--config', configPath(lab, 'client')]);
      assert.equal(sw.code, 0, `switchover failed: ${sw.stderr}`);
      const h2 = await waitHealthy(lab, 60_000);
      assert.equal(h2.primary, h0.primary, `cycle ${cycle}: roles restored`);
      assert.equal(h2.term, h0.term + 2, 'one term for the failover, one for the switchover');
      const tli = await timeline(h2.primary);
      assert.ok(tli >= lastTli + 2, `timeline moved on (${lastTli} -> ${tli})`);
      lastTli = tli;
      // Slot of the standby on the primary, active; app role still admitted on both (pg_hba).
      const slots = (
        await clientSql(lab, h2.primary as HostName, 'SELECT slot_name, active FROM pg_replication_slots', {
          admin: true,
        })
      ).rows;
      assert.deepEqual(slots, [[`pgarbiter_${h2.standby}`, 't']]);
      await sameData(h2.primary, h2.standby);
    }
    await sleep(1000);
    await w.stop();
    const c = await checkLabLedger(lab, w.ledger);
    assert.ok(c.report.totals.acknowledged > 100);
    assert.equal(c.report.lost.count, 0, 'no acknowledged row lost over three cycles');
    assert.equal(c.exitCode, 0);
  });

  test('switchover is refused without a healthy candidate', async () => {
    const h0 = await waitHealthy(lab);
    await isolate(lab, h0.standby as HostName, 'link-down');
    await waitFor('standby seen as not streaming', 20_000, async () => {
      const v = await clusterView(lab);
      return v.arbiter.state?.record.standbyPromotable === false ? true : undefined;
    });
    const sw = await cliIn(lab, 'client', ['switchover', '--config', configPath(lab, 'client')]);
    assert.notEqual(sw.code, 0);
    assert.match(sw.stderr, /refused|not a healthy/);
    const v = await clusterView(lab);
    assert.equal(v.arbiter.state?.record.term, h0.term, 'nothing changed');
    await heal(lab, h0.standby as HostName);
    await waitHealthy(lab, 60_000);
  });

  test('a rewind that cannot work (WAL removed) falls back to a fresh base backup', async () => {
    const h0 = await waitHealthy(lab);
    const old = h0.primary as 'pg1' | 'pg2';
    await isolate(lab, old, 'link-down');
    await waitFor('promotion', 30_000, async () => {
      const rec = (await clusterView(lab)).arbiter.state?.record;
      return rec && rec.term > h0.term ? true : undefined;
    });
    // Take the old primary's agent and server down and remove its WAL: pg_rewind needs it.
    await stopDaemon(lab, `agent-${old}`);
    await stopPostgres(lab, old, 'immediate');
    const data = join(lab.hosts[old].dir, 'data');
    for (const f of readdirSync(join(data, 'pg_wal')))
      if (/^[0-9A-F]{24}$/.test(f)) rmSync(join(data, 'pg_wal', f));
    await heal(lab, old);
    await startAgent(lab, old);
    const h1 = await waitHealthy(lab, 120_000);
    assert.equal(h1.standby, old);
    const v = await clusterView(lab);
    assert.equal(v.nodes.find((n) => n.name === old)?.state?.lastRejoin?.method, 'basebackup');
    await sameData(h1.primary, h1.standby);
  });
});
