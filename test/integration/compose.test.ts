// The container deployment for real: the machine prepared by the script a user runs
// (scripts/containers.sh: packages, Docker engine, `docker compose`, base image), then the
// original's tests on docker-compose.yml through `pgarbiter test-loss --target compose`: the
// writer on this host, `docker compose stop pg-slave`, `docker compose stop pg-master`,
// `docker compose kill pg-master` and `docker network disconnect` of the primary (then reconnect:
// it must rejoin by pg_rewind), each with synchronous_commit off and remote_apply. What must hold:
// remote_apply loses no acknowledged row in any cell, stopping the standby loses none in either
// mode, every cell got acknowledgements, the old primary rejoins. The floating VIP: on the
// primary's container only, moved by `docker compose stop` of the primary, reached through it from
// another container of the network. And bad input: one line, nothing changed. Everything the test
// created is removed (docker compose down -v), even after a failure.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  COMPOSE_CA_FILE,
  COMPOSE_DB_NODES,
  composeAddress,
  DEPLOYMENT_FILES,
  writeComposeDeployment,
} from '../../src/deploy/compose.js';
import { selfArgv } from '../../src/lab/index.js';
import {
  COMPOSE_ROOT,
  composeTarget,
  composeTestRwPort,
  DEFAULT_BASE_IMAGE,
} from '../../src/scenario/compose-target.js';
import { waitFor } from '../../src/scenario/lab-run.js';
import type { LossMatrixResult } from '../../src/scenario/test-loss.js';
import { run } from '../../src/util/exec.js';
import { isRoot } from './fixture.js';

const PROJECT = 'pgtl';
const NET = '10.214.100';
const BAD_PROJECT = 'pgtlbad';
const BAD_NET = '10.214.101';
const dir = mkdtempSync(join(tmpdir(), 'pgarbiter-compose-'));
const skip = isRoot ? false : 'needs root (Docker engine)';

const docker = (args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 300_000) =>
  run(['docker', ...args], {
    allowFailure: true,
    timeoutMs,
    cwd: COMPOSE_ROOT,
    env: { ...process.env, ...env },
  });

async function removeProject(project: string, net: string): Promise<void> {
  const configDir = join(COMPOSE_ROOT, `.compose-${project}`);
  await docker(['compose', '-p', project, 'down', '-v', '--remove-orphans', '--timeout', '5'], {
    PGARBITER_COMPOSE_NET: net,
    PGARBITER_COMPOSE_DIR: configDir,
  });
  rmSync(configDir, { recursive: true, force: true });
}

/** What a compose project left on the engine: containers, networks, volumes. */
async function leftovers(project: string): Promise<string[]> {
  const label = `label=com.docker.compose.project=${project}`;
  const out: string[] = [];
  for (const kind of ['container', 'network', 'volume']) {
    const args =
      kind === 'container' ? ['ps', '-aq', '--filter', label] : [kind, 'ls', '-q', '--filter', label];
    const r = await docker(args);
    out.push(
      ...r.stdout
        .split('\n')
        .filter(Boolean)
        .map((id) => `${kind} ${id}`),
    );
  }
  return out;
}

describe('compose deployment', { skip, timeout: 1_500_000 }, () => {
  /** Whether a Docker engine answered before this file ran: if not, the engine that
   *  scripts/containers.sh starts below is this file's to stop. */
  let engineWasRunning = false;
  before(async () => {
    engineWasRunning = (await docker(['info'], {}, 10_000).catch(() => ({ code: 1 }))).code === 0;
    await removeProject(PROJECT, NET);
    await removeProject(BAD_PROJECT, BAD_NET);
  });
  after(async () => {
    await removeProject(PROJECT, NET);
    await removeProject(BAD_PROJECT, BAD_NET);
    rmSync(dir, { recursive: true, force: true });
    if (!engineWasRunning)
      await run(['bash', join(COMPOSE_ROOT, 'scripts/containers.sh'), 'stop-engine'], {
        allowFailure: true,
        timeoutMs: 60_000,
      });
  });

  test('scripts/containers.sh prepares the machine, one timed line per step', async () => {
    const r = await run(['bash', join(COMPOSE_ROOT, 'scripts/containers.sh')], {
      allowFailure: true,
      timeoutMs: 900_000,
    });
    assert.equal(r.code, 0, `containers.sh failed: ${r.stderr}`);
    const steps = r.stdout.split('\n').filter((l) => /^containers: \d /.test(l));
    assert.equal(steps.length, 6, r.stdout);
    for (const l of steps) assert.match(l, / \d+\.\d s {2}\S/, `a time on: ${l}`);
    assert.equal((await docker(['compose', 'version'])).code, 0, 'docker compose answers');
    assert.equal((await docker(['image', 'inspect', DEFAULT_BASE_IMAGE])).code, 0, 'base image present');
    const build = await docker(['compose', '-p', PROJECT, 'build', 'config'], {}, 900_000);
    assert.equal(build.code, 0, `docker compose build: ${build.stderr}`);
  });

  test('bad input: one line, nothing changed', async () => {
    // No engine answering (DOCKER_HOST pointing nowhere).
    const noEngine = await run(selfArgv('test-loss', '--target', 'compose', '--json', join(dir, 'x.json')), {
      allowFailure: true,
      timeoutMs: 60_000,
      env: { ...process.env, DOCKER_HOST: `unix://${join(dir, 'no-engine.sock')}` },
    });
    assert.equal(noEngine.code, 1);
    assert.equal(noEngine.stderr.trim().split('\n').length, 1, noEngine.stderr);
    assert.match(noEngine.stderr, /^error: no Docker engine answers .*scripts\/containers\.sh/);
    assert.ok(!existsSync(join(dir, 'x.json')));

    // The base image missing: untag it for a moment (its layers stay under a second tag).
    const keep = `${DEFAULT_BASE_IMAGE.split(':')[0]}:test-keep`;
    assert.equal((await docker(['tag', DEFAULT_BASE_IMAGE, keep])).code, 0);
    try {
      assert.equal((await docker(['image', 'rm', DEFAULT_BASE_IMAGE])).code, 0);
      const noBase = await run(selfArgv('test-loss', '--target', 'compose', '--json', join(dir, 'x.json')), {
        allowFailure: true,
        timeoutMs: 120_000,
      });
      assert.equal(noBase.code, 1);
      assert.equal(noBase.stderr.trim().split('\n').length, 1, noBase.stderr);
      assert.match(
        noBase.stderr,
        /^error: the base image pgarbiter-base:bookworm is missing: run `bash scripts\/containers\.sh`/,
      );
    } finally {
      await docker(['tag', keep, DEFAULT_BASE_IMAGE]);
      await docker(['image', 'rm', keep]);
    }

    // A database container without NET_ADMIN: the agent refuses to run, in one line.
    const cfgDir = join(dir, 'deployment');
    await writeComposeDeployment(cfgDir, { net: BAD_NET, sync: 'remote_apply' });
    const noCap = await docker([
      'run',
      '--rm',
      '--network',
      'none',
      '-v',
      `${cfgDir}:/etc/pgarbiter:ro`,
      'pgarbiter:local',
      'pgarbiter',
      'agent',
      '--config',
      '/etc/pgarbiter/pg-master.yaml',
    ]);
    assert.equal(noCap.code, 1, noCap.stdout + noCap.stderr);
    const capLines = noCap.stderr.trim().split('\n');
    assert.equal(capLines.length, 1, noCap.stderr);
    assert.match(capLines[0]!, /^error: cannot fence: iptables was refused \(.*\): .*cap_add: \[NET_ADMIN\]/);

    // A member's config (or the app password) missing: the config service refuses in one line,
    // no member starts, the files are left as they were.
    const badDir = join(COMPOSE_ROOT, `.compose-${BAD_PROJECT}`);
    await writeComposeDeployment(badDir, { net: BAD_NET, sync: 'remote_apply' });
    unlinkSync(join(badDir, 'pg-slave.yaml'));
    const before = readdirSync(badDir).sort();
    const env = { PGARBITER_COMPOSE_NET: BAD_NET, PGARBITER_COMPOSE_DIR: badDir };
    const up = await docker(['compose', '-p', BAD_PROJECT, 'up', '-d'], env);
    assert.notEqual(up.code, 0, 'up refuses');
    const logs = await docker(['compose', '-p', BAD_PROJECT, 'logs', '--no-color', 'config'], env);
    const errs = logs.stdout.split('\n').filter((l) => /error:/.test(l));
    assert.equal(errs.length, 1, logs.stdout);
    assert.match(errs[0]!, /holds an incomplete deployment \(pg-slave\.yaml missing\)/);
    const running = await docker(['ps', '-q', '--filter', `label=com.docker.compose.project=${BAD_PROJECT}`]);
    assert.equal(running.stdout.trim(), '', 'no container of the project runs');
    assert.deepEqual(readdirSync(badDir).sort(), before, 'the deployment directory is unchanged');
    const kept = DEPLOYMENT_FILES.filter((f) => existsSync(join(badDir, f)));
    assert.equal(
      kept.length,
      DEPLOYMENT_FILES.length - 1,
      `every other file is still there: ${kept.join(' ')}`,
    );
    await removeProject(BAD_PROJECT, BAD_NET);

    // A published port in use on this host: the config service refuses before anything is
    // written, in one line that names the port and the setting; no member starts.
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const busy = (holder.address() as AddressInfo).port;
    try {
      const portEnv = {
        ...env,
        PGARBITER_RW_PORT: String(busy),
        PGARBITER_RO_PORT: String(busy === 65535 ? busy - 1 : busy + 1),
      };
      const upBusy = await docker(['compose', '-p', BAD_PROJECT, 'up', '-d'], portEnv);
      assert.notEqual(upBusy.code, 0, 'up refuses');
      const busyLogs = await docker(['compose', '-p', BAD_PROJECT, 'logs', '--no-color', 'config'], portEnv);
      const busyErrs = busyLogs.stdout.split('\n').filter((l) => /error:/.test(l));
      assert.equal(busyErrs.length, 1, busyLogs.stdout);
      assert.match(
        busyErrs[0]!,
        new RegExp(`port 127\\.0\\.0\\.1:${busy} is in use on this host: .*PGARBITER_RW_PORT`),
      );
      const busyRunning = await docker([
        'ps',
        '-q',
        '--filter',
        `label=com.docker.compose.project=${BAD_PROJECT}`,
      ]);
      assert.equal(busyRunning.stdout.trim(), '', 'no container of the project runs');
      assert.deepEqual(
        DEPLOYMENT_FILES.filter((f) => existsSync(join(badDir, f))),
        [],
        'no deployment was written',
      );
    } finally {
      holder.close();
      await removeProject(BAD_PROJECT, BAD_NET);
    }
    assert.deepEqual(await leftovers(BAD_PROJECT), []);
  });

  test('TLS by default, members without root, the VIP: curl, plain HTTP, pg_stat_ssl, uids and capabilities, the VIP across a failover', async () => {
    const target = composeTarget({ project: PROJECT, net: NET });
    try {
      await target.up('remote_apply');
      await target.healthy(120_000);
      const ca = join(target.configDir, COMPOSE_CA_FILE);
      const url = `https://${NET}.11:8008/health`;
      const noCa = await run(['curl', '-sS', '-m', '5', url], { allowFailure: true, timeoutMs: 10_000 });
      assert.notEqual(noCa.code, 0, 'curl without the CA fails');
      assert.match(noCa.stderr, /certificate/i);
      const withCa = await run(['curl', '-sS', '-m', '5', '--cacert', ca, url], { timeoutMs: 10_000 });
      assert.equal((JSON.parse(withCa.stdout) as { node: string }).node, 'pg-master');
      const plain = await run(['curl', '-sS', '-m', '5', `http://${NET}.11:8008/health`], {
        allowFailure: true,
        timeoutMs: 10_000,
      });
      assert.match(plain.stdout, /HTTPS only/, 'plain HTTP gets a clear refusal');
      // Through HAProxy's published port on this host, as the app role: encrypted.
      const rwPort = composeTestRwPort(NET);
      const ssl = await run(
        [
          '/usr/lib/postgresql/15/bin/psql',
          `host=127.0.0.1 port=${rwPort} user=app dbname=postgres sslmode=verify-ca sslrootcert=${ca} connect_timeout=5`,
          '-XAtc',
          'SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
        ],
        {
          timeoutMs: 15_000,
          env: {
            ...process.env,
            PGPASSWORD: readFileSync(join(target.configDir, 'app.password'), 'utf8').trim(),
          },
        },
      );
      assert.match(ssl.stdout.trim(), /^t\|TLSv1\.[23]$/);
      // Every process of a member: the agent as postgres with CAP_NET_ADMIN and CAP_NET_RAW only
      // (0x1000 | 0x2000: the config has `vip:`), PostgreSQL, the arbiter and HAProxy without root
      // and without any capability.
      const env = { PGARBITER_COMPOSE_NET: NET, PGARBITER_COMPOSE_DIR: target.configDir };
      const procs = async (service: string) => {
        const r = await docker(
          [
            'compose',
            '-p',
            PROJECT,
            'exec',
            '-T',
            service,
            'sh',
            '-c',
            'for p in /proc/[0-9]*; do printf "%s %s %s\\n" "$(cat $p/comm)" "$(awk \'/^Uid/{print $2}\' $p/status)" "$(awk \'/^CapEff/{print $2}\' $p/status)"; done 2>/dev/null',
          ],
          env,
          30_000,
        );
        return r.stdout
          .trim()
          .split('\n')
          .map((l) => l.split(' '))
          .filter((f) => f.length === 3) as [string, string, string][];
      };
      const master = await procs('pg-master');
      const agent = master.filter(([comm]) => comm === 'node');
      assert.equal(agent.length, 1, JSON.stringify(master));
      assert.notEqual(agent[0]?.[1], '0', 'the agent is not root');
      assert.equal(agent[0]?.[2], '0000000000003000', 'the agent has CAP_NET_ADMIN and CAP_NET_RAW only');
      const postgres = master.filter(([comm]) => comm === 'postgres');
      assert.ok(postgres.length > 3, JSON.stringify(master));
      for (const [, uid, cap] of postgres)
        assert.ok(uid !== '0' && /^0+$/.test(cap), 'PostgreSQL unprivileged');
      for (const service of ['arbiter', 'haproxy']) {
        const ps = (await procs(service)).filter(
          ([comm]) => comm !== 'sh' && comm !== 'awk' && comm !== 'cat',
        );
        assert.ok(ps.length > 0, service);
        for (const [comm, uid, cap] of ps)
          assert.ok(uid !== '0' && /^0+$/.test(cap), `${service}: ${comm} uid ${uid} caps ${cap}`);
      }

      // The floating VIP, as the containers see it: on the primary's eth0 only, and a client in
      // another container of the network (the arbiter's, it has psql) reaches the primary on it
      // with verify-full (the database nodes' certificates name the VIP).
      const vip = composeAddress(NET, 'vip');
      const holders = async () => {
        const out: string[] = [];
        for (const n of COMPOSE_DB_NODES) {
          const r = await docker(
            ['compose', '-p', PROJECT, 'exec', '-T', n, 'ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'],
            env,
            30_000,
          );
          if (r.code === 0 && r.stdout.includes(` ${vip}/24 `)) out.push(n);
        }
        return out;
      };
      const appPassword = readFileSync(join(target.configDir, 'app.password'), 'utf8').trim();
      const onVip = () =>
        docker(
          [
            'compose',
            '-p',
            PROJECT,
            'exec',
            '-T',
            '-e',
            `PGPASSWORD=${appPassword}`,
            'arbiter',
            '/usr/lib/postgresql/15/bin/psql',
            `host=${vip} port=5432 user=app dbname=postgres sslmode=verify-full sslrootcert=/etc/pgarbiter/${COMPOSE_CA_FILE} connect_timeout=3`,
            '-XAtc',
            "SELECT current_setting('cluster_name'), pg_is_in_recovery()",
          ],
          env,
          30_000,
        );
      const primaryBefore = await waitFor('the primary holding the VIP', 30_000, async () => {
        const h = await holders();
        return h.length === 1 ? h[0] : undefined;
      });
      const standbyBefore = COMPOSE_DB_NODES.find((n) => n !== primaryBefore)!;
      const viaVip = await onVip();
      assert.equal(viaVip.stdout.trim(), `${primaryBefore}|f`, `through the VIP: ${viaVip.stderr}`);
      // The failover: the primary's container stopped; the standby takes the VIP.
      assert.equal((await docker(['compose', '-p', PROJECT, 'stop', primaryBefore], env, 60_000)).code, 0);
      const stoppedAt = Date.now();
      await waitFor(`the VIP on ${standbyBefore}`, 60_000, async () =>
        (await holders()).join() === standbyBefore ? true : undefined,
      );
      const movedMs = Date.now() - stoppedAt;
      // A new connection on the same address from the same client reaches the new primary
      // (the gratuitous ARP has to point the client's neighbour entry at the new holder).
      const reached = await waitFor(
        `a client on the VIP reaching ${standbyBefore}`,
        20_000,
        async () => {
          const r = await onVip();
          return r.code === 0 ? r.stdout.trim() : undefined;
        },
        250,
      );
      assert.equal(reached, `${standbyBefore}|f`, 'the VIP leads to the new, writable primary');
      const reachedMs = Date.now() - stoppedAt;
      // The old primary started again rejoins as a standby and does not take the VIP back.
      assert.equal((await docker(['compose', '-p', PROJECT, 'start', primaryBefore], env, 60_000)).code, 0);
      await target.healthy(120_000);
      assert.deepEqual(await holders(), [standbyBefore], 'the rejoined node does not hold the VIP');
      const afterRejoin = await onVip();
      assert.equal(afterRejoin.stdout.trim(), `${standbyBefore}|f`, afterRejoin.stderr);
      // This host sits on the network's bridge: it reaches the VIP too (README "Containers").
      const fromHost = await run(
        [
          '/usr/lib/postgresql/15/bin/psql',
          `host=${vip} port=5432 user=app dbname=postgres sslmode=verify-full sslrootcert=${ca} connect_timeout=5`,
          '-XAtc',
          "SELECT current_setting('cluster_name'), pg_is_in_recovery()",
        ],
        { allowFailure: true, timeoutMs: 15_000, env: { ...process.env, PGPASSWORD: appPassword } },
      );
      assert.equal(fromHost.stdout.trim(), `${standbyBefore}|f`, fromHost.stderr);
      process.stderr.write(
        `compose VIP: on ${standbyBefore} ${movedMs} ms after \`stop ${primaryBefore}\`, reached through it at ${reachedMs} ms\n`,
      );
    } finally {
      await target.down();
    }
    assert.deepEqual(await leftovers(PROJECT), []);
  });

  test("the original's tests on docker compose: test-loss --target compose", async () => {
    const json = join(dir, 'compose-test-loss.json');
    const r = await run(
      selfArgv(
        'test-loss',
        '--target',
        'compose',
        '--prefix',
        PROJECT,
        '--subnet',
        `${NET}.0/24`,
        '--seconds',
        '3',
        '--json',
        json,
      ),
      { allowFailure: true, timeoutMs: 1_200_000 },
    );
    process.stderr.write(r.stdout);
    assert.ok(existsSync(json), `a report: ${r.stderr.slice(-2000)}`);
    const res = JSON.parse(readFileSync(json, 'utf8')) as LossMatrixResult;
    // The same table as the lab's test-loss.
    assert.match(
      r.stdout,
      /│ mode\s+│ fault\s+│ acknowledged\s+│ lost\s+│ unknown \(resolved\)\s+│ write gap\s+│ failover\s+│ result/,
    );
    const cells = res.rows.map((x) => `${x.sync}/${x.fault}${x.kill ? '/kill' : ''}`);
    assert.deepEqual(
      cells.sort(),
      ['off', 'remote_apply']
        .flatMap((s) =>
          ['stop-standby', 'stop-primary', 'stop-primary/kill', 'isolate-primary'].map((f) => `${s}/${f}`),
        )
        .sort(),
    );
    for (const row of res.rows) {
      const cell = `${row.sync}/${row.fault}${row.kill ? ' kill' : ''}`;
      assert.equal(row.error, undefined, `${cell}: ${row.error}`);
      assert.ok(row.acknowledged > 0, `${cell}: acknowledged writes`);
      if (row.sync === 'remote_apply' || row.fault === 'stop-standby')
        assert.equal(row.lost, 0, `${cell}: no acknowledged row lost`);
      assert.equal(row.torn, 0, `${cell}: no torn transaction`);
      if (row.fault !== 'stop-standby') {
        assert.notEqual(row.primaryAfter, row.primaryBefore, `${cell}: failed over`);
        assert.ok(
          row.failoverMs !== null && row.failoverMs < 30_000,
          `${cell}: failover time ${row.failoverMs}`,
        );
      }
      if (row.fault === 'isolate-primary')
        assert.equal(row.rejoin?.method, 'rewind', `${cell}: the old primary rejoined by pg_rewind`);
    }
    assert.equal(r.code, 0, `exit status: ${r.stderr.slice(-1500)}`);
    assert.ok(COMPOSE_DB_NODES.length === 2);
    assert.deepEqual(await leftovers(PROJECT), [], 'test-loss removed its deployment');
  });
});
