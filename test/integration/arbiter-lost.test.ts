// Issue 15: the arbiter lost right after a failover. A term is a fact anyone may carry: the old
// primary learns term 2 from pg2's agent and rejoins pg2 without the arbiter, and pg2 serves on
// the vouch of its streaming standby (rule unfence-vouched). Driven through the CLI as a user
// would: lab isolate pg1, lab stop arbiter --kill, lab heal pg1, status; then lab start arbiter.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Lab } from '../../src/lab/index.js';
import { configPath } from '../../src/lab/index.js';
import {
  checkLabLedger,
  cliIn,
  clusterView,
  multiHostDsn,
  startLabWriter,
  waitFor,
  waitHealthy,
} from '../../src/scenario/lab-run.js';
import { sleep } from '../../src/util/exec.js';
import { ackedBy, ledgerTxs } from '../../src/workload/ledger.js';
import { labCli as labCliIn, labIdentity, needsRoot, useLab } from './fixture.js';

const LAB = labIdentity({ prefix: 'pgal', subnet: '10.213.140.0/24' });
let lab: Lab;

async function labCli(...args: string[]): Promise<string> {
  const r = await labCliIn(LAB.prefix, ...args);
  lab = r.lab;
  return r.stdout;
}

describe('the arbiter lost right after a failover', { skip: needsRoot, timeout: 600_000 }, () => {
  useLab(LAB, {
    sync: 'remote_apply',
    timing: 'default',
    ready: (l) => {
      lab = l;
    },
  });

  test('pg1 follows pg2 and pg2 serves while the arbiter is down; nothing lost; no new term after', async () => {
    // In the lab's client directory: a new one per lab, removed with the lab.
    const ledger = `${lab.dir}/client/arbiter-lost-${Date.now()}.jsonl`;
    // libpq multi-host: the client finds the writable node itself, with no router in between.
    const writer = startLabWriter(lab, { ledger, sessions: 4, dsn: multiHostDsn(lab) });
    await writer.writing();
    await labCli('isolate', 'pg1');
    await waitFor('pg2 granted term 2 and writable', 30_000, async () => {
      const v = await clusterView(lab);
      const pg2 = v.nodes.find((n) => n.name === 'pg2')?.state;
      return pg2?.term === 2 && pg2.postgres.inRecovery === false && !pg2.fenced ? true : undefined;
    });
    await labCli('stop', 'arbiter', '--kill');
    // pg2 loses both peers: it fences (it cannot know that nobody else was promoted).
    await waitFor('pg2 fenced without any peer', 15_000, async () => {
      const v = await clusterView(lab);
      return v.nodes.find((n) => n.name === 'pg2')?.state?.fenced ? true : undefined;
    });
    const healedAt = Date.now();
    await labCli('heal', 'pg1');
    const resumed = await waitFor(
      'pg1 streaming from pg2 and pg2 writable, the arbiter still down',
      60_000,
      async () => {
        const v = await clusterView(lab);
        const [pg1, pg2] = ['pg1', 'pg2'].map((n) => v.nodes.find((x) => x.name === n)?.state);
        if (v.arbiter.reachable) throw new Error('the arbiter answers: it should be down');
        const ok =
          pg1?.term === 2 &&
          pg1.role === 'standby' &&
          pg1.postgres.inRecovery === true &&
          pg1.postgres.receiving &&
          pg2?.role === 'primary' &&
          pg2.postgres.inRecovery === false &&
          !pg2.fenced;
        return ok ? { pg1, pg2, at: Date.now() } : undefined;
      },
    );
    const pg2Log = readFileSync(join(lab.hosts.pg2.dir, 'agent.log'), 'utf8');
    assert.match(pg2Log, /UNFENCED \[unfence-vouched\]/, 'pg2 serves on the vouch of its streaming standby');
    const pg1Log = readFileSync(join(lab.hosts.pg1.dir, 'agent.log'), 'utf8');
    assert.match(pg1Log, /term 2 \(primary pg2\) learned from pg2/, "pg1 learned term 2 from pg2's agent");
    // Writes acknowledged by pg2 after the heal, while the arbiter is down.
    const pg2Addr = lab.hosts.pg2.address;
    const firstWrite = await waitFor('a write acknowledged by pg2 after the heal', 20_000, async () => {
      const a = ledgerTxs(ledger).find((x) => x.t > healedAt && ackedBy(x, pg2Addr));
      return a ? a.t : undefined;
    });
    process.stdout.write(
      `# arbiter down: pg1 rejoined and pg2 unfenced ${resumed.at - healedAt} ms after the heal; first write on pg2 ${firstWrite - healedAt} ms after it\n`,
    );
    assert.ok(firstWrite - healedAt < 30_000, 'writes resume within seconds of the rejoin');

    // status shows what the nodes are, with the arbiter unreachable (table and JSON agree).
    const status = await cliIn(lab, 'client', ['status', '--config', configPath(lab, 'client')]);
    assert.match(status.stdout, /pg1\s+│\s+\S+\s+│\s+standby/);
    assert.match(status.stdout, /pg2\s+│\s+\S+\s+│\s+primary/);
    assert.match(status.stdout, /arbiter unreachable/);
    const json = await cliIn(lab, 'client', ['status', '--json', '--config', configPath(lab, 'client')]);
    const view = JSON.parse(json.stdout) as { nodes: { name: string; state: { role: string } | null }[] };
    assert.deepEqual(
      view.nodes.map((n) => [n.name, n.state?.role]),
      [
        ['pg1', 'standby'],
        ['pg2', 'primary'],
      ],
    );

    // The arbiter comes back: it holds term 2 (persisted with the grant) and the cluster is healthy.
    const haproxy = await labCli('status', '--json');
    process.stdout.write(
      `# lab status before the arbiter returns: ${haproxy.replace(/\s+/g, ' ').slice(0, 600)}\n`,
    );
    await labCli('start', 'arbiter');
    const h = await waitHealthy(lab, 90_000);
    assert.deepEqual(h, { primary: 'pg2', standby: 'pg1', term: 2 }, 'no new term');
    await sleep(2000);
    await writer.stop();
    const c = await checkLabLedger(lab, ledger);
    assert.ok(c.report.totals.acknowledged > 0);
    assert.equal(c.report.lost.count, 0, `acknowledged rows lost: ${JSON.stringify(c.report.lost)}`);
  });
});
