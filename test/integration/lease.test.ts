// The primary's kernel-side lease (src/fence/lease.ts) on a real lab, synchronous_commit=off: a
// primary whose agent is frozen or killed, cut from its standby and the arbiter but still reached
// by its clients, stops acknowledging writes by itself before the arbiter grants the standby a
// newer term. The writer writes to the primary directly (no HAProxy, no multi-host), so only the
// kernel can stop it. A control without the lease (its table removed while the agent is frozen)
// shows that the same fault otherwise lets the old primary acknowledge after the grant.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { newTermTimeOf } from '../../src/cluster/view.js';
import { leaseDurationMs, TIMING_PROFILES } from '../../src/config.js';
import { Lease, leaseTable } from '../../src/fence/lease.js';
import type { Lab } from '../../src/lab/index.js';
import {
  labSslConninfo,
  partition,
  postmasterPid,
  signalMemberDaemon,
  startMember,
  stopMember,
  unpartition,
} from '../../src/lab/index.js';
import type { HostName } from '../../src/lab/topology.js';
import { clusterView, startLabWriter, waitFor, waitHealthy } from '../../src/scenario/lab-run.js';
import { run, sleep } from '../../src/util/exec.js';
import { longestGap } from '../../src/workload/compare.js';
import { ackedBy, ledgerTxs } from '../../src/workload/ledger.js';
import { labIdentity, needsRoot, useLab } from './fixture.js';

const LAB = labIdentity({ prefix: 'pgls', subnet: '10.213.61.0/24' });
let lab: Lab;
const p = TIMING_PROFILES.default;
const LEASE_MS = leaseDurationMs({
  probeIntervalMs: p.probe_interval,
  probeTimeoutMs: p.probe_timeout,
  fenceTimeoutMs: p.fence_timeout,
  fenceActionBudgetMs: p.fence_action_budget,
  failoverTimeoutMs: p.failover_timeout,
  syncStallTimeoutMs: p.sync_stall_timeout,
});

const ledgerPath = (name: string) => `${lab.dir}/client/lease-${name}-${Date.now()}.jsonl`;
const acksBy = (ledger: string, host: string) =>
  ledgerTxs(ledger).filter((tx) => ackedBy(tx, lab.hosts[host as HostName].address));

/** A writer that talks to `host`'s PostgreSQL only: nothing but the host itself can stop it. */
function directWriter(host: string, name: string) {
  return startLabWriter(lab, {
    ledger: ledgerPath(name),
    dsn: `host=${lab.hosts[host as HostName].address} port=5432 user=app dbname=postgres ${labSslConninfo(lab)}`,
    commitTimeoutS: 3,
  });
}

async function grantOf(term: number): Promise<number> {
  const v = await waitFor(`term ${term} granted`, 30_000, async () => {
    const view = await clusterView(lab);
    return (view.arbiter.state?.record.term ?? 0) >= term ? view : undefined;
  });
  const at = v.arbiter.state ? newTermTimeOf(v.arbiter.state, term) : null;
  assert.ok(at !== null, `the arbiter recorded the grant of term ${term}`);
  return at;
}

const cut = async (h: string, peers: string[]) => {
  for (const o of peers) await partition(lab, h as HostName, o as HostName);
};

/**
 * `disable` stops the primary's agent (frozen or killed) and, for the control, may remove its
 * lease; then the primary is cut from the standby and the arbiter. Returns the writer's acks by the
 * old primary after the grant, and when its acks stopped.
 */
async function isolatedWithoutAgent(
  name: string,
  disable: (primary: string) => Promise<void>,
  revive: (primary: string) => Promise<void>,
) {
  const h0 = await waitHealthy(lab);
  const w = directWriter(h0.primary, name);
  await w.writing();
  await sleep(1000);
  await disable(h0.primary);
  const cutAt = Date.now();
  await cut(h0.primary, [h0.standby, 'arbiter']);
  const grantAt = await grantOf(h0.term + 1);
  // The old primary's PostgreSQL runs on, reachable by the writer: only its kernel can stop it.
  assert.ok(postmasterPid(lab, h0.primary as 'pg1' | 'pg2') !== null, 'the old primary still runs');
  await sleep(2000);
  await w.stop();
  const acks = acksBy(w.ledger, h0.primary);
  const late = acks.filter((a) => a.t > grantAt);
  const lastAck = Math.max(...acks.map((a) => a.t));
  await unpartition(lab);
  await revive(h0.primary);
  const h1 = await waitHealthy(lab, 90_000);
  assert.equal(h1.primary, h0.standby, 'the standby took over');
  assert.equal(h1.standby, h0.primary, 'the old primary rejoined as standby');
  return { late, lastAck, cutAt, grantAt, acks: acks.length, primary: h0.primary };
}

describe('lease: a primary whose agent is dead or frozen stops acknowledging before a grant (sync off)', {
  skip: needsRoot,
}, () => {
  useLab(LAB, {
    sync: 'off',
    ready: (l) => {
      lab = l;
    },
  });

  test('status --json shows the lease: the primary holds one that ends within its length, the standby none', async () => {
    const h0 = await waitHealthy(lab);
    const view = await clusterView(lab);
    const of = (name: string) => view.nodes.find((n) => n.name === name)?.state?.lease;
    const primary = of(h0.primary);
    assert.equal(primary?.enabled, true);
    assert.ok(
      primary?.remainingMs !== null &&
        primary !== undefined &&
        primary.remainingMs > 0 &&
        primary.remainingMs <= LEASE_MS,
      `the primary's lease ends within ${LEASE_MS} ms: ${JSON.stringify(primary)}`,
    );
    assert.deepEqual(of(h0.standby), { enabled: true, until: null, remainingMs: null });
  });

  test('agent frozen (SIGSTOP of the agent only), primary cut from standby and arbiter: no ack after the grant', async () => {
    const r = await isolatedWithoutAgent(
      'frozen',
      async (h) => {
        signalMemberDaemon(lab, h as 'pg1' | 'pg2', 'SIGSTOP');
      },
      async (h) => {
        signalMemberDaemon(lab, h as 'pg1' | 'pg2', 'SIGCONT');
      },
    );
    console.log(
      `# frozen agent: last ack by ${r.primary} ${r.lastAck - r.cutAt} ms after the cut, grant ${r.grantAt - r.cutAt} ms after it (lease ${LEASE_MS} ms)`,
    );
    assert.ok(r.acks > 0, 'the writer had acknowledgements from the primary');
    assert.equal(r.late.length, 0, `${r.late.length} writes acknowledged by ${r.primary} after the grant`);
    assert.ok(r.lastAck < r.grantAt, 'the last ack came before the grant');
    assert.ok(r.lastAck - r.cutAt <= LEASE_MS + 200, 'the lease lapsed within its duration of the cut');
  });

  test('agent killed (kill -9), primary cut from standby and arbiter: no ack after the grant; the restarted agent rejoins', async () => {
    const r = await isolatedWithoutAgent(
      'killed',
      async (h) => {
        await stopMember(lab, h as 'pg1' | 'pg2', { part: 'agent', kill: true });
      },
      async (h) => {
        await startMember(lab, h as 'pg1' | 'pg2');
      },
    );
    console.log(
      `# killed agent: last ack by ${r.primary} ${r.lastAck - r.cutAt} ms after the cut, grant ${r.grantAt - r.cutAt} ms after it`,
    );
    assert.ok(r.acks > 0);
    assert.equal(r.late.length, 0, `${r.late.length} writes acknowledged by ${r.primary} after the grant`);
  });

  test('control: the same fault with the lease table removed lets the old primary acknowledge after the grant', async () => {
    const r = await isolatedWithoutAgent(
      'control',
      async (h) => {
        signalMemberDaemon(lab, h as 'pg1' | 'pg2', 'SIGSTOP');
        const ns = lab.hosts[h as HostName].ns;
        await run(['ip', 'netns', 'exec', ns, 'nft', 'delete', 'table', 'inet', leaseTable(5432)]);
      },
      async (h) => {
        signalMemberDaemon(lab, h as 'pg1' | 'pg2', 'SIGCONT');
      },
    );
    console.log(`# control without the lease: ${r.late.length} acks by ${r.primary} after the grant`);
    assert.ok(r.late.length > 0, 'without the lease the old primary acknowledges after the grant');
  });

  test('agent killed and restarted on a healthy primary: the lease lapses, the new agent takes it again, writes resume', async () => {
    const h0 = await waitHealthy(lab);
    const host = h0.primary as 'pg1' | 'pg2';
    const lease = new Lease(5432, [], LEASE_MS, { netns: lab.hosts[host].ns });
    const w = directWriter(host, 'restart');
    await w.writing();
    await sleep(1000);
    // 1. Restarted at once: the pause is what the restart costs.
    const k1 = Date.now();
    await stopMember(lab, host, { part: 'agent', kill: true });
    await startMember(lab, host);
    await waitFor('writes after the restart', 20_000, async () =>
      acksBy(w.ledger, host).some((a) => a.t > k1 + 3000) ? true : undefined,
    );
    // 2. Left dead past the lease: clients are blocked by the kernel; restarted, they resume.
    const k2 = Date.now();
    await stopMember(lab, host, { part: 'agent', kill: true });
    await sleep(LEASE_MS + 1500);
    const s = await lease.state();
    assert.deepEqual(s, { table: true, remainingMs: 0 }, 'the lease lapsed and its table stays');
    const blockedSince = Date.now();
    await sleep(1500);
    assert.equal(
      acksBy(w.ledger, host).filter((a) => a.t > blockedSince).length,
      0,
      'no write acknowledged while the lease is lapsed',
    );
    const r2 = Date.now();
    await startMember(lab, host);
    await waitFor('writes after the second restart', 20_000, async () =>
      acksBy(w.ledger, host).some((a) => a.t > r2) ? true : undefined,
    );
    const resumedAt = Math.min(
      ...acksBy(w.ledger, host)
        .filter((a) => a.t > r2)
        .map((a) => a.t),
    );
    await sleep(1000);
    await w.stop();
    const ackTimes = acksBy(w.ledger, host).map((a) => a.t);
    const gap1 = longestGap(ackTimes.filter((t) => t > k1 - 2000 && t < k2));
    const gap2 = longestGap(ackTimes.filter((t) => t > k2 - 2000));
    assert.ok(gap1 && gap2);
    console.log(
      `# agent kill -9 + immediate restart: longest write gap ${gap1.ms} ms; ` +
        `left dead ${r2 - k2} ms: acks stopped ${gap2.from - k2} ms after the kill, resumed ${resumedAt - r2} ms after the restart`,
    );
    assert.ok(gap2.from - k2 <= LEASE_MS + 200, 'the lease lapsed within its duration of the kill');
    assert.ok(resumedAt - r2 < 10_000, 'writes resume within 10 s of the restart');
    const h1 = await waitHealthy(lab);
    assert.equal(h1.primary, h0.primary, 'no failover: the primary was never lost');
    assert.equal(h1.term, h0.term);
  });
});
