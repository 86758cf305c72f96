// The namespace lab against the real system (root, real namespaces, real PostgreSQL 15).
// Own prefix and subnet so that other labs on the machine are never touched.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { describe, test } from 'node:test';
import { validateConfig } from '../../src/config.js';
import { Lease } from '../../src/fence/lease.js';
import {
  allNamespaces,
  clientSql,
  dataDir,
  heal,
  hostArgv,
  isolate,
  type Lab,
  labConfigDoc,
  labDirOf,
  labDown,
  labUp,
  loadLab,
  netnsPids,
  PG_BIN_DIR,
  partition,
  pidAlive,
  selfArgv,
  setLoss,
  showStage1,
  startDaemon,
  stopAgents,
  stopDaemon,
  tcpProbe,
  unpartition,
} from '../../src/lab/index.js';
import { PG_PORT } from '../../src/lab/pgconf.js';
import { newLab, writeLabSecrets } from '../../src/lab/state.js';
import { inNetns, type RunResult, run, sleep } from '../../src/util/exec.js';
import { cleanLabAround, labIdentity, needsRoot } from './fixture.js';

const LAB = labIdentity({ prefix: 'pgat', subnet: '10.213.50.0/24' });
const PREFIX = LAB.prefix;
const SUBNET = LAB.subnet;
const LAB_DIR = labDirOf(PREFIX);
/** The lab's addresses start with this ("10.213.50."). */
const NET = SUBNET.replace(/0\/24$/, '');
/** A /24 next to the lab's, for "already up on another subnet". */
const OTHER_SUBNET = SUBNET.replace(/\.(\d+)\.0\/24$/, (_, o: string) => `.${(Number(o) + 1) % 256}.0/24`);
const esc = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const skip = needsRoot;

async function ourNamespaces(): Promise<string[]> {
  const r = await run(['ip', 'netns', 'list'], { timeoutMs: 5000 });
  const mine = new Set(allNamespaces(PREFIX));
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => mine.has(n));
}

/** PIDs of processes whose command line mentions our lab (its dir or a namespace name). */
function ourProcesses(): number[] {
  const found: number[] = [];
  for (const d of readdirSync('/proc')) {
    const pid = Number(d);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if ((cmd.includes(LAB_DIR) || cmd.includes(`${PREFIX}-`)) && pidAlive(pid)) found.push(pid);
    } catch {}
  }
  return found;
}

async function assertNothingLeft(): Promise<void> {
  assert.deepEqual(await ourNamespaces(), [], 'no namespace of the lab is left');
  assert.equal(existsSync(LAB_DIR), false, 'the lab directory is gone');
  assert.deepEqual(ourProcesses(), [], 'no process of the lab is left');
  const addrs = await run(['ip', '-o', 'addr'], { timeoutMs: 5000 });
  assert.equal(addrs.stdout.includes(NET), false, 'nothing of the lab subnet in the root namespace');
}

function cli(args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 120_000): Promise<RunResult> {
  return run(selfArgv(...args), { timeoutMs, allowFailure: true, env });
}

/** Runs psql on the client host against `target` over TCP; returns the result and how long it took. */
const psql = (
  lab: Lab,
  target: 'pg1' | 'pg2',
  sql: string,
  o: { admin?: boolean; env?: NodeJS.ProcessEnv; cancelAfterS?: number } = {},
) => clientSql(lab, target, sql, { ...o, timeoutMs: 30_000, allowFailure: true });

cleanLabAround(PREFIX);

describe('lab network', { skip }, () => {
  test('up and down leave nothing behind; up is idempotent', async () => {
    await labDown(PREFIX); // a previous test that failed may have left its lab
    const up = await labUp({ prefix: PREFIX, subnet: SUBNET, postgres: false });
    assert.equal(up.reused, false);
    assert.deepEqual((await ourNamespaces()).sort(), allNamespaces(PREFIX).sort());
    const addrs = await run(['ip', '-o', 'addr'], { timeoutMs: 5000 });
    assert.equal(addrs.stdout.includes(NET), false, 'lab addresses only inside namespaces');
    const again = await labUp({ prefix: PREFIX, subnet: SUBNET, postgres: false });
    assert.equal(again.reused, true);
    const down = await labDown(PREFIX);
    assert.ok(down.seconds < 10);
    await assertNothingLeft();
  });

  test('isolate and heal cut and restore TCP reachability (both modes), partition cuts one pair', async () => {
    await labDown(PREFIX); // a previous test that failed may have left its lab
    const { lab } = await labUp({ prefix: PREFIX, subnet: SUBNET, postgres: false });
    const pg1 = lab.hosts.pg1.address;
    const listener = await startDaemon(
      lab,
      'pg1',
      'listener',
      [process.execPath, '-e', "require('net').createServer((s) => s.end()).listen(7000, '0.0.0.0')"],
      `${lab.hosts.pg1.dir}/listener.log`,
    );
    const reach = async (from: 'client' | 'arbiter' | 'pg2') => tcpProbe(lab, from, pg1, 7000, 1);
    /** After a heal the path may need a moment (neighbour resolution on a loaded machine). */
    const reachSoon = async (from: 'client' | 'arbiter' | 'pg2') => {
      let r = await reach(from);
      for (let i = 0; i < 5 && r !== 'open'; i++) r = await reach(from);
      return r;
    };
    assert.equal(await reach('client'), 'open');
    assert.equal(await reach('arbiter'), 'open');
    for (const mode of ['link-down', 'subnet'] as const) {
      await isolate(lab, 'pg1', mode);
      assert.equal(await reach('client'), 'timeout', `${mode}: client cut off`);
      assert.equal(await reach('arbiter'), 'timeout', `${mode}: arbiter cut off`);
      await heal(lab, 'pg1');
      assert.equal(await reachSoon('client'), 'open', `${mode}: healed`);
      assert.equal(await reachSoon('arbiter'), 'open', `${mode}: healed`);
    }
    await partition(lab, 'pg1', 'pg2');
    assert.equal(await reach('pg2'), 'timeout', 'pg2 cut off from pg1');
    assert.equal(await reach('client'), 'open', 'the client still reaches pg1');
    await unpartition(lab);
    assert.equal(await reachSoon('pg2'), 'open');
    // Packet loss in the switch: all of it cuts the host off, a share is a random drop rule.
    await setLoss(lab, 'pg1', 100);
    assert.equal(await reach('client'), 'timeout', '100 % loss: client cut off');
    assert.equal(await reach('arbiter'), 'timeout', '100 % loss: arbiter cut off');
    await setLoss(lab, 'pg1', 30);
    const rules = await run(inNetns(lab.switchNs, ['nft', 'list', 'ruleset']), {
      timeoutMs: 5000,
    });
    assert.match(rules.stdout, new RegExp(`iifname "${lab.hosts.pg1.port}" numgen random mod 100 < 30 drop`));
    assert.match(rules.stdout, new RegExp(`oifname "${lab.hosts.pg1.port}" numgen random mod 100 < 30 drop`));
    assert.deepEqual(loadLab(PREFIX).losses, { pg1: 30 }, 'the loss is recorded in lab.json');
    await setLoss(lab, 'pg1', 0);
    assert.equal(await reachSoon('client'), 'open', 'loss ended');
    assert.deepEqual(loadLab(PREFIX).losses, {});
    await assert.rejects(setLoss(lab, 'pg1', 101), /give a whole percentage from 0 to 100/);
    assert.equal(await stopDaemon(lab, 'listener', 2000), true);
    assert.equal(pidAlive(listener.pid), false);
    await labDown(PREFIX);
    await assertNothingLeft();
  });

  test('a half-built lab is rebuilt by up and removed by down', async () => {
    await labDown(PREFIX); // a previous test that failed may have left its lab
    // What a crash half-way leaves: some namespaces, one with a process inside, no lab.json.
    await run(['ip', 'netns', 'add', `${PREFIX}-sw`], { timeoutMs: 5000 });
    await run(['ip', 'netns', 'add', `${PREFIX}-pg1`], { timeoutMs: 5000 });
    // (its output away from our pipes: run() waits until they close)
    await run(
      [
        'ip',
        'netns',
        'exec',
        `${PREFIX}-pg1`,
        'bash',
        '-c',
        'setsid -f sleep 300 </dev/null >/dev/null 2>&1',
      ],
      {
        timeoutMs: 5000,
      },
    );
    const [sleeper] = await netnsPids(`${PREFIX}-pg1`);
    assert.ok(sleeper && pidAlive(sleeper));
    const up = await labUp({ prefix: PREFIX, subnet: SUBNET, postgres: false });
    assert.equal(up.rebuilt, true);
    assert.equal(pidAlive(sleeper), false, 'the leftover process was ended');
    assert.equal(
      await tcpProbe(up.lab, 'client', up.lab.hosts.pg2.address, 9, 1),
      'refused',
      'the rebuilt lab works',
    );
    // Only namespaces by hand again, then down.
    await labDown(PREFIX);
    await run(['ip', 'netns', 'add', `${PREFIX}-client`], { timeoutMs: 5000 });
    await labDown(PREFIX);
    await assertNothingLeft();
  });

  test('bad input: one-line errors, nothing changed', async () => {
    await labDown(PREFIX); // a previous test that failed may have left its lab
    const noLab = await cli(['lab', 'psql', '--prefix', PREFIX]);
    assert.equal(noLab.code, 1);
    assert.match(noLab.stderr, new RegExp(`no lab "${PREFIX}" is up.*lab up --prefix ${PREFIX}`));
    assert.equal(noLab.stderr.trim().split('\n').length, 1);

    const notRoot = await run(
      ['runuser', '-u', 'nobody', '--', ...selfArgv('lab', 'up', '--prefix', PREFIX)],
      {
        timeoutMs: 30_000,
        allowFailure: true,
      },
    );
    assert.equal(notRoot.code, 1);
    assert.match(notRoot.stderr, /must run as root/);

    const noTools = await cli(['lab', 'up', '--prefix', PREFIX], { ...process.env, PATH: '/nonexistent' });
    assert.equal(noTools.code, 1);
    assert.match(noTools.stderr, /missing ip, iptables, nft.*apt-get install -y iproute2 iptables nftables/);

    const badSubnet = await cli(['lab', 'up', '--prefix', PREFIX, '--subnet', '10.0.0.0/8']);
    assert.equal(badSubnet.code, 1);
    assert.match(badSubnet.stderr, /invalid lab subnet/);
    await assertNothingLeft();

    await labUp({ prefix: PREFIX, subnet: SUBNET, postgres: false });
    const unknown = await cli(['lab', 'isolate', 'db3', '--prefix', PREFIX]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown lab host "db3": the hosts are pg1, pg2, arbiter, client/);
    for (const pct of ['101', 'x', '-5', '2.5']) {
      const badLoss = await cli(['lab', 'loss', 'pg1', pct, '--prefix', PREFIX]);
      assert.equal(badLoss.code, 1, `loss ${pct}: exit 1`);
      assert.equal(badLoss.stderr.trim().split('\n').length, 1, `loss ${pct}: one line (${badLoss.stderr})`);
      assert.match(badLoss.stderr, /give a whole percentage from 0 to 100|unknown option/);
    }
    assert.equal(loadLab(PREFIX).losses, undefined, 'no loss recorded after bad input');
    const otherSubnet = await cli([
      'lab',
      'up',
      '--no-postgres',
      '--prefix',
      PREFIX,
      '--subnet',
      OTHER_SUBNET,
    ]);
    assert.equal(otherSubnet.code, 1);
    assert.match(otherSubnet.stderr, new RegExp(`already up on ${esc(SUBNET)}.*lab down --prefix ${PREFIX}`));
    assert.equal((await ourNamespaces()).length, 5, 'the existing lab is untouched');
    await labDown(PREFIX);
    await assertNothingLeft();
  });

  test('the lab config for each host is valid and carries the sync setting', () => {
    const lab = newLab(PREFIX, SUBNET, { postgres: true, agents: true, sync: 'off', timing: 'fast' });
    mkdirSync(lab.dir, { recursive: true });
    try {
      writeLabSecrets(lab, { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
      for (const h of ['pg1', 'pg2', 'arbiter', 'client'] as const) {
        const doc = labConfigDoc(lab, h);
        assert.ok(!JSON.stringify(doc).includes(lab.secrets.secret), 'no secret in the config itself');
        const cfg = validateConfig(doc, h);
        assert.equal(cfg.secret, lab.secrets.secret, 'the secret from its file');
        assert.equal(cfg.postgres.replication_password, lab.secrets.replicationPassword);
        assert.equal(cfg.postgres.synchronous_commit, 'off');
        assert.equal(cfg.postgres.allowed_cidr, SUBNET);
      }
    } finally {
      rmSync(lab.dir, { recursive: true, force: true });
    }
  });
});

describe('lab with PostgreSQL', { skip }, () => {
  test('a killed `lab up` is cleaned up by `lab down`', async () => {
    await labDown(PREFIX); // a previous test that failed may have left its lab
    // Killed with SIGKILL once its network exists, i.e. as `pgarbiter init` starts (init takes
    // about 1-2 s). Waiting for the namespaces rather than a fixed time: on a loaded machine
    // `lab up` took longer than 1.5 s to create any (CI, 2026-11-30).
    const [cmd, ...args] = selfArgv('lab', 'up', '--no-show', '--prefix', PREFIX, '--subnet', SUBNET);
    const child = spawn(cmd!, args, { stdio: 'ignore' });
    const exited = new Promise<string | null>((resolve) => child.on('exit', (_c, sig) => resolve(sig)));
    const end = Date.now() + 60_000;
    for (let i = 0; i < 1200 && Date.now() < end; i++) {
      if ((await ourNamespaces()).length === allNamespaces(PREFIX).length || child.exitCode !== null) break;
      await sleep(50);
    }
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL', 'lab up was killed half-way');
    assert.ok((await ourNamespaces()).length > 0);
    await sleep(500); // the orphaned init may still start a postmaster
    await labDown(PREFIX);
    await assertNothingLeft();
  });

  test('an interrupted `lab up` (SIGINT to it alone) stops at its next step and removes what it built', async () => {
    await labDown(PREFIX);
    const [cmd, ...args] = selfArgv('lab', 'up', '--no-show', '--prefix', PREFIX, '--subnet', SUBNET);
    const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    // Interrupt once the network is built, while PostgreSQL is being provisioned.
    for (let i = 0; i < 100 && !out.includes('network:'); i++) await sleep(100);
    assert.match(out, /network:/, 'lab up got as far as the network');
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    const code = await exited;
    clearTimeout(timer);
    assert.equal(code, 130, `exit status 130 after an interrupt (stderr: ${err})`);
    assert.match(
      err,
      /interrupted \(SIGINT\): stopping after the current step, then remove the half-built lab/,
    );
    assert.match(
      err.trim().split('\n').at(-1) ?? '',
      new RegExp(`^error: interrupted: the half-built lab "${PREFIX}" was removed$`),
    );
    await assertNothingLeft();
  });

  test('stage 1: streaming replication, read-only standby (25006), standby current; sync commit waits', async () => {
    await labDown(PREFIX); // a previous test that failed may have left its lab
    const up = await labUp({ prefix: PREFIX, subnet: SUBNET, sync: 'remote_apply', timing: 'fast' });
    const lab = up.lab;
    const s = await showStage1(lab);
    assert.equal(s.primary.inRecovery, false);
    assert.equal(s.standby.inRecovery, true);
    assert.equal(s.replication[0]?.application_name, 'pg2');
    assert.equal(s.replication[0]?.state, 'streaming');
    assert.equal(s.walReceiver[0]?.status, 'streaming');
    assert.equal(s.standby.writeRefused?.sqlstate, '25006');
    assert.match(s.standby.writeRefused?.message ?? '', /read-only transaction/);
    assert.notEqual(s.freshness.visibleAfterMs, null);
    assert.equal(s.freshness.sameMaxOrderId, true);

    // A row written on pg1 appears on pg2 (over the lab network, from the client host).
    const w = await psql(lab, 'pg1', "INSERT INTO customers (id, name, city) VALUES (1000, 'Probe', 'Lab')");
    assert.equal(w.code, 0, w.stderr);
    let seen = '';
    for (let i = 0; i < 50 && seen !== 'Probe'; i++) {
      seen = (await psql(lab, 'pg2', 'SELECT name FROM customers WHERE id = 1000')).stdout.trim();
      if (seen !== 'Probe') await sleep(100);
    }
    assert.equal(seen, 'Probe');
    const onStandby = await psql(lab, 'pg2', "UPDATE customers SET city = 'x' WHERE id = 1000");
    assert.notEqual(onStandby.code, 0);
    assert.match(onStandby.stderr, /cannot execute UPDATE in a read-only transaction/);

    // synchronous_commit: the agents set pg2 as synchronous standby; stop them (so nothing
    // drops sync or restarts pg2), then stop pg2: a remote_apply commit waits, `off` does not.
    assert.equal((await psql(lab, 'pg1', 'SHOW synchronous_commit')).stdout.trim(), 'remote_apply');
    let syncState = '';
    for (let i = 0; i < 50 && syncState !== 'sync'; i++) {
      syncState = (
        await psql(lab, 'pg1', "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'pg2'", {
          admin: true,
        })
      ).stdout.trim();
      if (syncState !== 'sync') await sleep(100);
    }
    assert.equal(syncState, 'sync', 'pg2 is a synchronous standby');
    await stopAgents(lab);
    // With its agent stopped, pg1's lease lapses and the kernel blocks its clients (by design:
    // README "The lease"). This check is about PostgreSQL's own synchronous wait: open the lease.
    await new Lease(PG_PORT, [], 0, { netns: lab.hosts.pg1.ns }).open();
    await run(
      hostArgv(lab, 'pg2', [
        'runuser',
        '-u',
        'postgres',
        '--',
        `${PG_BIN_DIR}/pg_ctl`,
        '-D',
        dataDir(lab, 'pg2'),
        '-m',
        'fast',
        '-w',
        '-t',
        '20',
        'stop',
      ]),
      { timeoutMs: 30_000 },
    );
    const waited = await psql(
      lab,
      'pg1',
      "INSERT INTO customers (id, name, city) VALUES (1001, 'Waits', 'Lab')",
      { cancelAfterS: 2 },
    );
    assert.ok(waited.ms >= 1900, `the remote_apply commit waited (${waited.ms.toFixed(0)} ms)`);
    assert.match(waited.stderr, /canceling wait for synchronous replication/);
    const off = await psql(lab, 'pg1', "INSERT INTO customers (id, name, city) VALUES (1002, 'Off', 'Lab')", {
      cancelAfterS: 10,
      env: { PGOPTIONS: '-c synchronous_commit=off' },
    });
    assert.equal(off.code, 0, off.stderr);
    assert.ok(off.ms < 1500, `synchronous_commit=off did not wait (${off.ms.toFixed(0)} ms)`);

    const down = await labDown(PREFIX);
    assert.ok(
      up.seconds + down.seconds < 15,
      `lab up + down took ${(up.seconds + down.seconds).toFixed(1)} s`,
    );
    await assertNothingLeft();
  });
});
