// The floating VIP (config `vip:`) on a real lab: held by the unfenced primary only, moved on a
// failover and a switchover, never on a fenced node (sampled from inside its namespace all along),
// a writer connected to the VIP reaching the primary, and bad addresses refused at start-up.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { ApiClient } from '../../src/api/client.js';
import { newTermTimeOf } from '../../src/cluster/view.js';
import { labApiSockets, labClusterMembers } from '../../src/lab/api-access.js';
import { configPath, heal, isolate, type Lab, selfArgv, vipHolder } from '../../src/lab/index.js';
import { clientPsqlCommand } from '../../src/lab/psql.js';
import { type HostName, vipAddress } from '../../src/lab/topology.js';
import {
  apiGetIn,
  arbiterView,
  checkLabLedger,
  cliIn,
  startLabWriter,
  vipDsn,
  waitFor,
  waitHealthyByApi,
} from '../../src/scenario/lab-run.js';
import { run, sleep } from '../../src/util/exec.js';
import { ackedBy, ledgerTxs } from '../../src/workload/ledger.js';
import { labIdentity, needsRoot, useLab } from './fixture.js';

const LAB = labIdentity({ prefix: 'pgvip', subnet: '10.213.150.0/24' });
let lab: Lab;

const holders = async () => {
  const out: string[] = [];
  for (const h of ['pg1', 'pg2'] as const) if (await vipHolder(lab, h)) out.push(h);
  return out;
};

async function fenced(host: HostName): Promise<boolean> {
  const r = await run(['ip', 'netns', 'exec', lab.hosts[host].ns, 'iptables', '-S', 'INPUT'], {
    timeoutMs: 5000,
  });
  return /pgarbiter-fence/.test(r.stdout);
}

/** Samples `host` every 100 ms until stopped: how often it was fenced while holding the VIP. */
function watchFencedHolder(host: HostName) {
  let stop = false;
  const seen = { samples: 0, fenced: 0, fencedWithVip: 0 };
  const done = (async () => {
    for (let i = 0; i < 3000 && !stop; i++) {
      // The VIP first, then the fence: a release happens before the fence rule, so a sample in
      // this order can only see both if the node really held the address while fenced.
      const vip = await vipHolder(lab, host);
      const f = await fenced(host);
      seen.samples++;
      if (f) seen.fenced++;
      if (f && vip) seen.fencedWithVip++;
      await sleep(100);
    }
  })();
  return {
    seen,
    stop: async () => {
      stop = true;
      await done;
      return seen;
    },
  };
}

/** psql on the client host, on the VIP, in `select pg_sleep(600)`: ends only if its connection does. */
function spawnVipSleeper() {
  const { argv, env } = clientPsqlCommand(lab, { conninfo: vipDsn(lab) }, ['-Atc', 'select pg_sleep(600)']);
  const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const done = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.on('exit', (code) => resolve({ code, stderr })),
  );
  const kill = () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  };
  return { done, kill, pid: child.pid ?? -1 };
}

/** The client side ("A.B.C.D:port") of process `pid`'s connection to the VIP, seen from the
 *  client host (`ip netns exec` execs, so the psql is the spawned pid). */
async function vipConnectionOf(pid: number): Promise<string | undefined> {
  const r = await run(
    ['ip', 'netns', 'exec', lab.hosts.client.ns, 'ss', '-tnpH', 'dst', `${vipAddress(lab.subnet)}:5432`],
    { timeoutMs: 5000, allowFailure: true },
  );
  const line = r.stdout.split('\n').find((l) => l.includes(`pid=${pid},`));
  return line?.trim().split(/\s+/)[3];
}

describe('floating VIP', { skip: needsRoot, timeout: 600_000 }, () => {
  useLab(LAB, {
    sync: 'remote_apply',
    timing: 'default',
    ready: (l) => {
      lab = l;
    },
  });

  test('the primary alone holds the VIP; a client on the VIP writes to it', async () => {
    const h = await waitHealthyByApi(lab);
    await waitFor('the VIP on the primary', 10_000, async () =>
      (await holders()).join() === h.primary ? true : undefined,
    );
    const status = await run(selfArgv('lab', 'status', '--json', '--prefix', lab.prefix), {
      timeoutMs: 30_000,
    });
    const hosts = (JSON.parse(status.stdout) as { hosts: { host: string; vip?: boolean }[] }).hosts;
    assert.deepEqual(
      hosts.filter((x) => x.vip).map((x) => x.host),
      [h.primary],
      '`lab status` shows who holds it',
    );
    const w = startLabWriter(lab, { ledger: `${lab.dir}/client/vip-basic.jsonl`, dsn: vipDsn(lab) });
    await w.writing();
    await w.stop();
    const acked = ledgerTxs(w.ledger).filter((t) => t.outcome === 'ack');
    assert.ok(acked.length > 0);
    assert.ok(
      acked.every((t) => ackedBy(t, lab.hosts[h.primary as HostName].address)),
      'every write through the VIP was acknowledged by the primary',
    );
  });

  test('failover: the isolated primary drops the VIP before it fences and never holds it again; the new primary takes it', async (t) => {
    const h0 = await waitHealthyByApi(lab);
    const oldP = h0.primary as HostName;
    const newP = h0.standby as HostName;
    const w = startLabWriter(lab, { ledger: `${lab.dir}/client/vip-failover.jsonl`, dsn: vipDsn(lab) });
    await w.writing();
    // A session on the VIP whose statement is in flight at the cut: its client sends nothing more
    // (TCP had acknowledged the statement), so only the new holder's tickle ACK can end it.
    const sleeper = spawnVipSleeper();
    t.after(sleeper.kill);
    const sleeperConn = await waitFor('the sleeping session connected to the VIP', 15_000, () =>
      vipConnectionOf(sleeper.pid),
    );
    // The holder lists its clients every round: wait for this session to be listed
    // in what it tells a member (its peer asks with the secret).
    const sockets = labApiSockets(lab);
    const member = new ApiClient(labClusterMembers(lab), (h) => sockets?.get(h));
    await waitFor('the primary relays the sleeping session in its VIP clients', 15_000, async () => {
      const r = await member.agentHealth(lab.hosts[oldP].address, 1500);
      return r?.vipClients?.includes(sleeperConn) ? true : undefined;
    });
    const anonymous = await apiGetIn<{ vipClients?: string[] }>(lab, oldP, '/health');
    assert.equal(anonymous?.status, 200);
    assert.equal(anonymous?.body.vipClients, undefined, 'the client addresses go to a member only');
    await sleep(1500); // a round or more of the standby's, to hear it
    const watch = watchFencedHolder(oldP);
    await isolate(lab, oldP, 'link-down');
    await waitFor(
      'the old primary fenced',
      15_000,
      async () => ((await fenced(oldP)) ? true : undefined),
      100,
    );
    assert.equal(await vipHolder(lab, oldP), false, "no VIP in the fenced node's namespace");
    await waitFor('the VIP on the new primary', 30_000, async () =>
      (await holders()).join() === newP ? true : undefined,
    );
    const movedAt = Date.now();
    const ended = await Promise.race([sleeper.done, sleep(15_000).then(() => null)]);
    sleeper.kill();
    assert.ok(
      ended,
      'the session in flight on the VIP was reset within 15 s of the move (without the tickle it waits for TCP keepalive, hours)',
    );
    assert.match(ended.stderr, /closed the connection|reset|terminat/i, ended.stderr);
    process.stderr.write(
      `vip: the in-flight session ended ${Date.now() - movedAt} ms after the move was seen\n`,
    );
    const arb = await arbiterView(lab);
    assert.ok(arb, 'the arbiter answers');
    assert.equal(arb.record.primary, newP);
    const grantAt = newTermTimeOf(arb, arb.record.term);
    assert.ok(grantAt !== null);
    // The writer on the VIP reaches the new primary.
    await waitFor('acks from the new primary through the VIP', 20_000, async () =>
      ledgerTxs(w.ledger).some((t) => t.outcome === 'ack' && ackedBy(t, lab.hosts[newP].address))
        ? true
        : undefined,
    );
    await heal(lab, oldP);
    const h1 = await waitHealthyByApi(lab, 120_000);
    assert.equal(h1.standby, oldP, 'the old primary rejoined as standby');
    await sleep(1000);
    const seen = await watch.stop();
    assert.ok(seen.fenced > 0, 'the watch saw the old primary fenced');
    assert.equal(seen.fencedWithVip, 0, `the fenced node held the VIP in ${seen.fencedWithVip} samples`);
    assert.deepEqual(await holders(), [newP], 'the rejoined standby has no VIP, the new primary has');
    await w.stop();
    const late = ledgerTxs(w.ledger).filter(
      (t) => t.outcome === 'ack' && ackedBy(t, lab.hosts[oldP].address) && t.t > grantAt!,
    );
    assert.equal(late.length, 0, 'nothing acknowledged by the old primary after the grant');
    const c = await checkLabLedger(lab, w.ledger);
    assert.equal(c.report.lost.count, 0, 'no acknowledged row lost');
  });

  test('switchover: the VIP moves with the role, the old primary gives it up', async () => {
    const h0 = await waitHealthyByApi(lab);
    const sw = await cliIn(lab, 'client', ['switchover', '--config', configPath(lab, 'client')]);
    assert.equal(sw.code, 0, sw.stderr);
    const h1 = await waitHealthyByApi(lab, 60_000);
    assert.equal(h1.primary, h0.standby);
    await waitFor('the VIP on the new primary only', 10_000, async () =>
      (await holders()).join() === h1.primary ? true : undefined,
    );
  });

  test('bad VIP input: outside the subnet, or in use by another host: one-line errors, nothing changes', async () => {
    const h0 = await waitHealthyByApi(lab);
    const tmp = mkdtempSync(join(lab.dir, 'pg2', 'vipbad-'));
    try {
      const doc = parse(readFileSync(configPath(lab, 'pg2'), 'utf8')) as Record<string, unknown>;
      const write = (name: string, address: string) => {
        const file = join(tmp, name);
        writeFileSync(
          file,
          stringify({ ...doc, api_port: 8018, state_dir: tmp, vip: { address, interface: 'e0' } }),
          { mode: 0o600 },
        );
        return file;
      };
      const outside = await cliIn(
        lab,
        'pg2',
        ['agent', '--config', write('outside.yaml', '10.99.0.10/24')],
        {},
        20_000,
      );
      assert.equal(outside.code, 1);
      assert.match(outside.stderr, /vip\.address 10\.99\.0\.10\/24 is outside the database nodes' subnet/);
      assert.equal(outside.stderr.trim().split('\n').length, 1, 'one line');
      // The client host's address: not a member's, inside the subnet, but answering ARP.
      const taken = `${lab.hosts.client.address}/24`;
      const inUse = await cliIn(lab, 'pg2', ['agent', '--config', write('inuse.yaml', taken)], {}, 20_000);
      assert.equal(inUse.code, 1);
      assert.match(inUse.stderr, /is in use by another host \(MAC [0-9a-f:]{17}, not the peer/);
      assert.equal(inUse.stderr.trim().split('\n').length, 1, 'one line');
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    const h1 = await waitHealthyByApi(lab);
    assert.deepEqual(h1, h0, 'the running cluster is unaffected');
    assert.deepEqual(await holders(), [h0.primary]);
    // Nobody else picked the client's address up.
    const r = await run(['ip', '-n', lab.hosts.pg2.ns, '-4', 'addr', 'show', 'dev', 'e0'], {
      timeoutMs: 5000,
    });
    assert.doesNotMatch(r.stdout, new RegExp(`inet ${lab.hosts.client.address.replace(/\./g, '\\.')}/`));
  });
});
