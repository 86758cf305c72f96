// Issue 12: GET /metrics on every member and `pgarbiter history`, on the real lab. A failover
// (pg1 isolated) must move the series: term 2 on pg2 and the arbiter, a fence on pg1, a promotion
// on pg2, a grant on the arbiter, a rejoin on pg1 after the heal. The history must still list the
// grant, the fence and the rejoin after the arbiter is restarted (it is persisted in state_dir).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { arbiterHealthSchema, type HistoryEntry } from '../../src/api/protocol.js';
import type { Lab } from '../../src/lab/index.js';
import { configPath, hostArgv, labApiCurl, labDown, labUp, loadLab, selfArgv } from '../../src/lab/index.js';
import type { HostName } from '../../src/lab/topology.js';
import { apiGetIn, cliIn, clusterView, waitFor, waitHealthy } from '../../src/scenario/lab-run.js';
import { run } from '../../src/util/exec.js';

const PREFIX = 'pgm';
const SUBNET = '10.213.170.0/24';
let lab: Lab;

async function labCli(...args: string[]): Promise<string> {
  const r = await run(selfArgv('lab', ...args, '--prefix', PREFIX), {
    timeoutMs: 60_000,
    allowFailure: true,
  });
  lab = loadLab(PREFIX);
  assert.equal(r.code, 0, `lab ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

type Series = Map<string, number>;

function parse(text: string): Series {
  const m: Series = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    m.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return m;
}

/** One series' value; fails the test when it is missing. */
function val(s: Series, key: string): number {
  assert.ok(s.has(key), `series ${key} missing`);
  return s.get(key) as number;
}

/** The sum of a metric over all its label sets (0 when it has none yet). */
function sum(s: Series, name: string): number {
  let t = 0;
  for (const [k, v] of s) if (k === name || k.startsWith(`${name}{`)) t += v;
  return t;
}

/** GET /metrics of a member from the client host, without any secret. */
async function scrape(host: HostName): Promise<Series> {
  const r = await apiGetIn<string>(lab, host, '/metrics', 3);
  assert.ok(r, `${host}: /metrics did not answer`);
  assert.equal(r.status, 200);
  assert.equal(typeof r.body, 'string');
  return parse(r.body);
}

/** GET /metrics of a member from inside its own namespace (it may be cut off from the others). */
async function scrapeLocally(host: HostName): Promise<Series> {
  const r = await run(
    hostArgv(lab, host, labApiCurl(lab, host, host, '/metrics', { timeoutS: 3, local: true })),
    {
      timeoutMs: 10_000,
    },
  );
  return parse(r.stdout);
}

describe('metrics and history on the lab', { timeout: 600_000 }, () => {
  before(async () => {
    await labDown(PREFIX);
    ({ lab } = await labUp({ prefix: PREFIX, subnet: SUBNET, sync: 'remote_apply', timing: 'default' }));
    await waitHealthy(lab);
  });
  after(async () => {
    await labDown(PREFIX);
  });

  test('series move with a failover; history lists it and survives an arbiter restart', async () => {
    // ---- healthy, term 1
    const [p1, p2, w] = await Promise.all([scrape('pg1'), scrape('pg2'), scrape('arbiter')]);
    assert.equal(val(p1, 'pgarbiter_term'), 1);
    assert.equal(val(p1, 'pgarbiter_role{role="primary"}'), 1);
    assert.equal(val(p1, 'pgarbiter_fenced'), 0);
    assert.equal(val(p1, 'pgarbiter_postgres_up'), 1);
    assert.equal(val(p1, 'pgarbiter_postgres_in_recovery'), 0);
    assert.equal(val(p1, 'pgarbiter_peer_reachable{peer="arbiter"}'), 1);
    assert.equal(val(p1, 'pgarbiter_replication_sync_state{state="sync"}'), 1);
    assert.ok(val(p1, 'pgarbiter_round_duration_seconds_count') > 0);
    assert.ok(val(p1, 'pgarbiter_probe_duration_seconds_count{target="peer_agent"}') > 0);
    assert.ok(val(p1, 'pgarbiter_agent_starts_total') >= 1);
    assert.ok(p1.has('process_resident_memory_bytes'), 'process metrics are there');
    assert.equal(val(p2, 'pgarbiter_role{role="standby"}'), 1);
    assert.equal(val(p2, 'pgarbiter_postgres_in_recovery'), 1);
    assert.equal(val(p2, 'pgarbiter_peer_reachable{peer="primary_postgres"}'), 1);
    assert.equal(sum(p2, 'pgarbiter_promotions_total'), 0);
    assert.equal(val(w, 'pgarbiter_term'), 1);
    assert.equal(val(w, 'pgarbiter_primary_reachable'), 1);
    assert.equal(val(w, 'pgarbiter_grants_total'), 0);
    // What an agent reads from the arbiter every round: its record and its vouch for the primary.
    const wh = arbiterHealthSchema.parse((await apiGetIn(lab, 'arbiter', '/health'))?.body);
    assert.equal(wh.record.term, 1);
    assert.equal(wh.record.primary, 'pg1');
    assert.ok(
      wh.primaryVouchedMsAgo !== null && wh.primaryVouchedMsAgo < 1500,
      `vouched ${wh.primaryVouchedMsAgo} ms ago`,
    );
    const fencesBefore = sum(p1, 'pgarbiter_fences_total');

    // ---- pg1 cut off: pg2 is granted term 2
    await labCli('isolate', 'pg1');
    await waitFor('pg2 granted term 2 and writable', 30_000, async () => {
      const v = await clusterView(lab);
      const pg2 = v.nodes.find((n) => n.name === 'pg2')?.state;
      return pg2?.term === 2 && pg2.postgres.inRecovery === false && !pg2.fenced ? true : undefined;
    });
    // pg1 fenced itself: read from inside its namespace, the only place that reaches it now.
    const p1cut = await waitFor('pg1 counts its fence', 15_000, async () => {
      const s = await scrapeLocally('pg1');
      return val(s, 'pgarbiter_fenced') === 1 ? s : undefined;
    });
    const fenceSeries = [...p1cut].filter(([k]) => k.startsWith('pgarbiter_fences_total'));
    process.stdout.write(`# pg1 while cut off: ${JSON.stringify(fenceSeries)}\n`);
    assert.ok(sum(p1cut, 'pgarbiter_fences_total') > fencesBefore, 'a fence counted on pg1');
    assert.ok(val(p1cut, 'pgarbiter_fence_duration_seconds_count') >= 1);
    assert.equal(val(p1cut, 'pgarbiter_peer_reachable{peer="arbiter"}'), 0);
    assert.equal(val(p1cut, 'pgarbiter_peer_reachable{peer="peer_agent"}'), 0);
    const [p2b, wb] = await Promise.all([scrape('pg2'), scrape('arbiter')]);
    assert.equal(val(p2b, 'pgarbiter_term'), 2);
    assert.equal(val(p2b, 'pgarbiter_role{role="primary"}'), 1);
    assert.equal(sum(p2b, 'pgarbiter_promotions_total'), 1);
    assert.equal(val(wb, 'pgarbiter_term'), 2);
    assert.equal(val(wb, 'pgarbiter_grants_total'), 1);
    assert.ok(sum(wb, 'pgarbiter_refusals_total') >= 0);
    assert.equal(val(wb, 'pgarbiter_requests_total{request="promote",event="grant"}'), 1);

    // ---- heal: pg1 rejoins as standby of term 2
    await labCli('heal', 'pg1');
    const h = await waitHealthy(lab, 90_000);
    assert.deepEqual(h, { primary: 'pg2', standby: 'pg1', term: 2 });
    const p1c = await scrape('pg1');
    assert.equal(val(p1c, 'pgarbiter_term'), 2);
    assert.equal(val(p1c, 'pgarbiter_role{role="standby"}'), 1);
    assert.equal(sum(p1c, 'pgarbiter_rejoins_total'), 1);
    assert.ok(sum(p1c, 'pgarbiter_unfences_total') >= 1);

    // ---- the arbiter restarted: its history is read back from state_dir
    await labCli('stop', 'arbiter');
    await labCli('start', 'arbiter');
    await waitHealthy(lab, 60_000);
    const wc = await scrape('arbiter');
    assert.equal(val(wc, 'pgarbiter_term'), 2, 'the restarted arbiter reports the persisted term');
    assert.equal(val(wc, 'pgarbiter_grants_total'), 0, 'counters start again with the process');

    const r = await cliIn(lab, 'client', ['history', '--json', '--config', configPath(lab, 'client')]);
    assert.equal(r.code, 0, r.stderr);
    const hist = JSON.parse(r.stdout) as { entries: HistoryEntry[]; unreachable: string[] };
    assert.deepEqual(hist.unreachable, []);
    const find = (member: string, kind: string, term?: number) =>
      hist.entries.find(
        (e) => e.member === member && e.kind === kind && (term === undefined || e.term === term),
      );
    const grant = find('arbiter', 'grant', 2);
    assert.ok(grant, `the grant of term 2 is listed: ${r.stdout.slice(0, 3000)}`);
    assert.equal(grant.rule, 'promote');
    assert.match(grant.detail, /granted term 2 to pg2/);
    const fence = find('pg1', 'fence');
    assert.ok(fence, 'pg1 fence listed');
    assert.match(fence.rule ?? '', /^fence-/);
    const rejoin = find('pg1', 'rejoin', 2);
    assert.ok(rejoin, 'pg1 rejoin listed');
    assert.match(rejoin.detail, /standby of pg2 by (rewind|basebackup)/);
    assert.ok(find('pg2', 'promote', 2), 'pg2 promotion listed');
    // Merged by time: the fence before the grant, the grant before the rejoin.
    const at = (e: HistoryEntry) => Date.parse(e.at);
    assert.ok(at(fence) <= at(grant) && at(grant) <= at(rejoin), 'merged by time');

    // The table, and bad input in one line.
    const table = await cliIn(lab, 'client', ['history', '--config', configPath(lab, 'client')]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /arbiter\s+│\s+grant\s+│\s+2/);
    assert.match(table.stdout, /pg1\s+│\s+rejoin/);
    const bad = await cliIn(lab, 'client', [
      'history',
      '--limit',
      'x',
      '--config',
      configPath(lab, 'client'),
    ]);
    assert.notEqual(bad.code, 0);
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    assert.match(bad.stderr, /--limit/);
  });
});
