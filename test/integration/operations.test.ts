// Operator commands and the API's bad input on a real lab: maintenance, forced failover,
// manual rejoin, the agents' and the arbiter's HTTP API refusing malformed or unauthorised
// requests without any effect, a stopped standby and a stopped arbiter.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { CHECK_HOLD_MS, PASS_HOLD_MS, STEADY_ANSWER_MS } from '../../src/agent/daemon.js';
import type { Lab } from '../../src/lab/index.js';
import {
  configPath,
  heal,
  hostArgv,
  isolate,
  LAB_API_PORT,
  labCaFile,
  loadLab,
  selfArgv,
  startAgent,
  stopDaemon,
} from '../../src/lab/index.js';
import type { HostName } from '../../src/lab/topology.js';
import {
  checkLabLedger,
  cliIn,
  clusterView,
  startLabWriter,
  waitFor,
  waitHealthy,
} from '../../src/scenario/lab-run.js';
import { apiUrl } from '../../src/tls/material.js';
import { run, sleep } from '../../src/util/exec.js';
import { labCli as labCliIn, labIdentity, needsRoot, useLab } from './fixture.js';

const LAB = labIdentity({ prefix: 'pgop', subnet: '10.213.130.0/24' });
let lab: Lab;

const cli = (...args: string[]) => cliIn(lab, 'client', [...args, '--config', configPath(lab, 'client')]);

/** curl-free HTTPS from the client host: node's fetch in a one-liner, trusting the lab's CA. */
async function http(host: HostName, path: string, opts: { secret?: string; body?: string } = {}) {
  const url = apiUrl(lab.hosts[host].address, LAB_API_PORT, path);
  const script = `fetch(${JSON.stringify(url)},{method:${JSON.stringify(opts.body === undefined ? 'GET' : 'POST')},headers:${JSON.stringify(
    opts.secret ? { authorization: `Bearer ${opts.secret}` } : {},
  )},body:${JSON.stringify(opts.body)},signal:AbortSignal.timeout(3000)}).then(async r=>console.log(r.status+' '+await r.text()))`;
  const r = await run(hostArgv(lab, 'client', [process.execPath, '-e', script]), {
    timeoutMs: 10_000,
    env: { ...process.env, NODE_EXTRA_CA_CERTS: labCaFile(lab) },
  });
  const [status, ...rest] = r.stdout.trim().split(' ');
  return { status: Number(status), body: rest.join(' ') };
}

/** `pgarbiter lab ...` as a user runs it (from the machine, not a lab host); the lab's record
 *  changes on disk, so it is read again. Returns stdout; a non-zero exit fails the test. */
async function labCli(...args: string[]): Promise<string> {
  const r = await labCliIn(LAB.prefix, ...args);
  lab = r.lab;
  return r.stdout;
}

async function restartAgent(host: 'pg1' | 'pg2') {
  await stopDaemon(lab, `agent-${host}`);
  await startAgent(lab, host);
}

describe('operations', { skip: needsRoot, timeout: 900_000 }, () => {
  useLab(LAB, {
    sync: 'remote_apply',
    timing: 'default',
    ready: (l) => {
      lab = l;
    },
  });

  test('API: wrong secret 401, malformed body 400, unknown path 404, stale term 409; nothing changes', async () => {
    const h0 = await waitHealthy(lab);
    const secret = lab.secrets.secret;
    assert.equal(
      (await http('arbiter', '/promote', { body: JSON.stringify({ node: h0.standby, term: h0.term }) }))
        .status,
      401,
    );
    assert.equal((await http('arbiter', '/promote', { secret: 'wrong-secret-123', body: '{}' })).status, 401);
    assert.equal((await http('arbiter', '/promote', { secret, body: '{not json' })).status, 400);
    const bad = await http('arbiter', '/promote', {
      secret,
      body: JSON.stringify({ node: h0.standby, term: 'x' }),
    });
    assert.equal(bad.status, 400);
    assert.match(bad.body, /term/);
    assert.equal(
      (
        await http('arbiter', '/promote', {
          secret,
          body: JSON.stringify({ node: h0.standby, term: h0.term, extra: 1 }),
        })
      ).status,
      400,
    );
    assert.equal((await http('arbiter', '/nope')).status, 404);
    // A well-formed request the arbiter must refuse: the primary is alive.
    const refused = await http('arbiter', '/promote', {
      secret,
      body: JSON.stringify({ node: h0.standby, term: h0.term }),
    });
    assert.equal(refused.status, 409);
    assert.match(refused.body, /not lost/);
    const stale = await http('arbiter', '/set-promotable', {
      secret,
      body: JSON.stringify({ node: h0.primary, term: h0.term - 1, promotable: false }),
    });
    assert.equal(stale.status, 409);
    assert.equal((await http(h0.primary as HostName, '/switchover', { body: '{}' })).status, 401);
    assert.equal((await http(h0.primary as HostName, '/primary')).status, 200);
    assert.equal((await http(h0.standby as HostName, '/primary')).status, 503);
    assert.equal((await http(h0.standby as HostName, '/replica')).status, 200);
    const h1 = await waitHealthy(lab);
    assert.deepEqual(h1, h0, 'nothing changed');
  });

  test("HAProxy's checks: held when asked (`?hold`), a pass up to PASS_HOLD_MS, a steady 503 up to CHECK_HOLD_MS; at once otherwise", async () => {
    const h0 = await waitHealthy(lab);
    await sleep(STEADY_ANSWER_MS); // every check's answer the same that long (HAProxy's checks keep asking)
    const p = lab.hosts[h0.primary as HostName].address;
    const sb = lab.hosts[h0.standby as HostName].address;
    const checks = (q: string) => [
      apiUrl(p, LAB_API_PORT, `/primary${q}`),
      apiUrl(sb, LAB_API_PORT, `/replica${q}`),
      apiUrl(sb, LAB_API_PORT, `/primary${q}`),
      apiUrl(p, LAB_API_PORT, `/replica${q}`),
    ];
    const urls = [
      apiUrl(p, LAB_API_PORT, '/health'),
      apiUrl(sb, LAB_API_PORT, '/health'),
      ...checks('?hold'),
      ...checks(''),
    ];
    // One process, connections warm (the two /health calls), each call timed on its own.
    const script = `(async()=>{const out=[];for(const u of ${JSON.stringify(urls)}){const t=performance.now();const r=await fetch(u,{signal:AbortSignal.timeout(5000)});await r.text();out.push([r.status,Math.round(performance.now()-t)])}console.log(JSON.stringify(out))})()`;
    const r = await run(hostArgv(lab, 'client', [process.execPath, '-e', script]), {
      timeoutMs: 20_000,
      env: { ...process.env, NODE_EXTRA_CA_CERTS: labCaFile(lab) },
    });
    const out = JSON.parse(r.stdout) as [number, number][];
    const held = out.slice(2, 6);
    const plain = out.slice(6, 10);
    assert.deepEqual(
      held.map((c) => c[0]),
      [200, 200, 503, 503],
      r.stdout,
    );
    assert.deepEqual(
      plain.map((c) => c[0]),
      [200, 200, 503, 503],
      r.stdout,
    );
    // Held: a pass for PASS_HOLD_MS (nothing changes meanwhile), a steady 503 for CHECK_HOLD_MS.
    assert.ok(held[0]![1] >= PASS_HOLD_MS - 50 && held[1]![1] >= PASS_HOLD_MS - 50, `passes: ${r.stdout}`);
    assert.ok(held[0]![1] < CHECK_HOLD_MS && held[1]![1] < CHECK_HOLD_MS, `passes: ${r.stdout}`);
    assert.ok(held[2]![1] >= CHECK_HOLD_MS - 50, `the standby's /primary: ${r.stdout}`);
    assert.ok(held[3]![1] >= CHECK_HOLD_MS - 50, `the primary's /replica: ${r.stdout}`);
    // Not asked: answered at once (generous bound: it takes milliseconds), whatever the answer.
    for (const [, ms] of plain) assert.ok(ms < PASS_HOLD_MS - 100, `not held: ${r.stdout}`);
  });

  test('bad daemon start-up: a port in use, a broken config: one-line errors, the running cluster unaffected', async () => {
    const h0 = await waitHealthy(lab);
    const second = await cliIn(lab, 'pg1', ['agent', '--config', configPath(lab, 'pg1')], {}, 20_000);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /port 8008 .* already in use/);
    assert.equal(second.stderr.trim().split('\n').length, 1, 'one line');
    const bad = join(lab.dir, 'pg1', 'broken.yaml');
    writeFileSync(bad, 'node: pg1\nsecret: short\n', { mode: 0o600 });
    const broken = await cliIn(lab, 'pg1', ['agent', '--config', bad], {}, 20_000);
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /invalid config: .*secret/);
    const h1 = await waitHealthy(lab);
    assert.deepEqual(h1, h0);
  });

  test('maintenance pauses failover (shown in status); off lets it happen', async () => {
    const h0 = await waitHealthy(lab);
    assert.equal((await cli('maintenance', 'on')).code, 0);
    const st = await cli('status');
    assert.match(st.stdout, /MAINTENANCE/);
    await isolate(lab, h0.primary as HostName, 'link-down');
    try {
      await sleep(6000);
      const v0 = await clusterView(lab);
      assert.equal(v0.arbiter.state?.record.term, h0.term, 'no failover in maintenance');
      assert.equal(v0.nodes.find((n) => n.name === h0.standby)?.state?.phase, 'standby-primary-lost');
    } finally {
      assert.equal((await cli('maintenance', 'off')).code, 0);
    }
    const v = await waitFor('failover after maintenance off', 20_000, async () => {
      const x = await clusterView(lab);
      return (x.arbiter.state?.record.term ?? 0) > h0.term ? x : undefined;
    });
    assert.equal(v.arbiter.state?.record.primary, h0.standby);
    await heal(lab, h0.primary as HostName);
    await waitHealthy(lab, 90_000);
  });

  test('forced failover: refused without --force; with it the healthy old primary is replaced and rejoins', async () => {
    const h0 = await waitHealthy(lab);
    const no = await cli('failover', '--to', h0.standby);
    assert.notEqual(no.code, 0);
    assert.match(no.stderr, /--force/);
    assert.equal((await clusterView(lab)).arbiter.state?.record.term, h0.term);
    const w = startLabWriter(lab, { ledger: join(lab.dir, 'client', 'forced.jsonl') });
    await w.writing();
    const yes = await cli('failover', '--to', h0.standby, '--force');
    assert.equal(yes.code, 0, yes.stderr);
    assert.match(yes.stderr, /WARNING/);
    const h1 = await waitHealthy(lab, 90_000);
    assert.equal(h1.primary, h0.standby);
    assert.equal(h1.term, h0.term + 1);
    await w.stop();
    // With remote_apply the old primary could not acknowledge anything the standby lacked.
    const c = await checkLabLedger(lab, w.ledger);
    assert.equal(c.report.lost.count, 0);
  });

  test('forced failover with the arbiter gone: through the agent; the arbiter adopts the term when back', async () => {
    const h0 = await waitHealthy(lab);
    const old = h0.primary as 'pg1' | 'pg2';
    await stopDaemon(lab, 'arbiter');
    await isolate(lab, old, 'link-down');
    try {
      const r = await cli('failover', '--to', h0.standby, '--force');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /arbiter .* unreachable/);
      await waitFor('the standby promoted', 30_000, async () => {
        const s = (await clusterView(lab)).nodes.find((n) => n.name === h0.standby)?.state;
        return s?.postgres.inRecovery === false && s.term === h0.term + 1 ? true : undefined;
      });
    } finally {
      await heal(lab, old);
      await startAgent(lab, 'arbiter');
    }
    const h1 = await waitHealthy(lab, 90_000);
    assert.deepEqual(
      [h1.primary, h1.standby, h1.term],
      [h0.standby, old, h0.term + 1],
      'adopted; the old primary rejoined',
    );
    const v = await clusterView(lab);
    assert.ok(v.arbiter.state?.events.some((e) => e.ok && e.kind === 'adopt'));
  });

  test('rejoin: manual leaves the old primary fenced until `pgarbiter rejoin`', async () => {
    const h0 = await waitHealthy(lab);
    const old = h0.primary as 'pg1' | 'pg2';
    const file = configPath(lab, old);
    const doc = parse(readFileSync(file, 'utf8'));
    writeFileSync(file, stringify({ ...doc, rejoin: 'manual' }), { mode: 0o600 });
    await restartAgent(old);
    await isolate(lab, old, 'link-down');
    await waitFor('promotion', 30_000, async () =>
      ((await clusterView(lab)).arbiter.state?.record.term ?? 0) > h0.term ? true : undefined,
    );
    await heal(lab, old);
    await sleep(5000);
    let s = (await clusterView(lab)).nodes.find((n) => n.name === old)?.state;
    assert.equal(s?.fenced, true, 'still fenced');
    assert.equal(s?.phase, 'needs-rejoin');
    const r = await cli('rejoin', old);
    assert.equal(r.code, 0, r.stderr);
    const h1 = await waitHealthy(lab, 90_000);
    assert.equal(h1.standby, old);
    s = (await clusterView(lab)).nodes.find((n) => n.name === old)?.state;
    assert.equal(s?.lastRejoin?.method, 'rewind');
    writeFileSync(file, stringify(doc), { mode: 0o600 });
    await restartAgent(old);
    await waitHealthy(lab, 60_000);
  });

  test('standby stopped (agent and PostgreSQL): sync dropped after the stall, writes go on; back when restarted', async () => {
    const h0 = await waitHealthy(lab);
    const sb = h0.standby as 'pg1' | 'pg2';
    const w = startLabWriter(lab, { ledger: join(lab.dir, 'client', 'standby-stop.jsonl') });
    await w.writing();
    const stopped = await labCli('stop', sb);
    assert.match(
      stopped,
      /the agent \(pid \d+\) stopped \(SIGTERM\), PostgreSQL \(pid \d+\) stopped \(fast\)/,
    );
    await waitFor('sync dropped', 20_000, async () => {
      const p = (await clusterView(lab)).nodes.find((n) => n.name === h0.primary)?.state;
      return p?.replication.syncNames === '' ? true : undefined;
    });
    const v = await clusterView(lab);
    assert.equal(v.arbiter.state?.record.standbyPromotable, false);
    assert.equal(v.arbiter.state?.record.term, h0.term);
    assert.match(await labCli('start', sb), /agent-\w+ started/);
    await waitHealthy(lab, 60_000);
    await w.stop();
    const c = await checkLabLedger(lab, w.ledger);
    assert.equal(c.report.lost.count, 0);
    assert.ok((c.report.longestWriteGap?.ms ?? 0) < 15_000);
  });

  test('primary killed (kill -9 of agent and PostgreSQL): failover; `lab start` brings it back as a rewound standby', async () => {
    const h0 = await waitHealthy(lab);
    const old = h0.primary as 'pg1' | 'pg2';
    const w = startLabWriter(lab, { ledger: join(lab.dir, 'client', 'primary-kill.jsonl') });
    await w.writing();
    assert.match(
      await labCli('stop', old, '--kill'),
      /kill -9 of the agent \(pid \d+\) and PostgreSQL \(postmaster \d+/,
    );
    const v = await waitFor('a failover to the standby', 30_000, async () => {
      const view = await clusterView(lab);
      return view.arbiter.state?.record.term === h0.term + 1 ? view : undefined;
    });
    assert.equal(v.arbiter.state?.record.primary, h0.standby, 'the standby was promoted');
    // The old primary crashed: its agent, started again, must not serve it as a primary but
    // rewind it (pg_rewind runs crash recovery first) and follow the new primary.
    await labCli('start', old);
    const h1 = await waitHealthy(lab, 90_000);
    assert.deepEqual([h1.primary, h1.standby, h1.term], [h0.standby, old, h0.term + 1]);
    const rejoined = readFileSync(`${lab.hosts[old].dir}/agent.log`, 'utf8')
      .split('\n')
      .filter((l) => l.includes('rejoined as standby'))
      .pop();
    assert.match(
      rejoined ?? '',
      /rejoined as standby of pg\d by rewind/,
      'pg_rewind handled the crashed data directory',
    );
    await w.stop();
    const c = await checkLabLedger(lab, w.ledger);
    assert.equal(c.report.lost.count, 0, 'no acknowledged row lost (remote_apply)');
  });

  test('lab stop/start: bad input is a one-line error and changes nothing', async () => {
    const before = JSON.stringify(loadLab(LAB.prefix).daemons);
    for (const [args, msg] of [
      [['stop', 'client'], /^error: the client host runs no cluster member/],
      [['stop', 'arbiter', '--postgres'], /^error: the arbiter host runs no PostgreSQL/],
      [['stop', 'pg9'], /^error: unknown lab host "pg9"/],
      [['start', 'pg1'], /^error: agent-pg1 in pg1 already runs \(pid \d+\)$/],
    ] as const) {
      const r = await run(selfArgv('lab', ...args, '--prefix', LAB.prefix), {
        timeoutMs: 30_000,
        allowFailure: true,
      });
      assert.equal(r.code, 1, `${args.join(' ')}: exit 1`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line (${r.stderr})`);
      assert.match(r.stderr.trim(), msg);
    }
    assert.equal(JSON.stringify(loadLab(LAB.prefix).daemons), before, 'no daemon touched');
  });

  test('arbiter killed (kill -9): no fence, no promotion; restarted, it keeps its record', async () => {
    const h0 = await waitHealthy(lab);
    assert.match(await labCli('stop', 'arbiter', '--kill'), /kill -9 of the arbiter \(pid \d+\)/);
    await sleep(5000);
    const v = await clusterView(lab);
    assert.equal(v.arbiter.reachable, false);
    for (const n of v.nodes) assert.equal(n.state?.fenced, false, `${n.name} not fenced`);
    assert.match(await labCli('start', 'arbiter'), /arbiter started in arbiter/);
    const h1 = await waitHealthy(lab, 30_000);
    assert.deepEqual(
      [h1.primary, h1.term],
      [h0.primary, h0.term],
      'the persisted record survived the restart',
    );
  });
});
