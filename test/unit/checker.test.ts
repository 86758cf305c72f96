import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSyncMode } from '../../src/postgres/settings.js';
import { acksPerSecond, compareLedger, longestGap, promisesNoLoss } from '../../src/workload/compare.js';
import { encodeId } from '../../src/workload/ids.js';
import { LEDGER_FORMAT, type Ledger, type LedgerHeader, type TxEntry } from '../../src/workload/ledger.js';

const RUN = 99;
const T0 = Date.parse('2026-01-01T00:00:00.000Z');

function header(sc: string, ssn: string): LedgerHeader {
  return {
    type: 'header',
    format: LEDGER_FORMAT,
    version: 1,
    runId: `r${RUN}`,
    run: RUN,
    startedAt: new Date(T0).toISOString(),
    startedAtMs: T0,
    target: 'host=127.0.0.1 port=5432 user=app dbname=postgres target_session_attrs=read-write',
    sessions: 2,
    server: '127.0.0.1:5432',
    serverVersion: '15',
    synchronousCommit: sc,
    synchronousStandbyNames: ssn,
    systemIdentifier: '1',
    tables: ['customers', 'orders'],
  };
}

const id = (s: number, q: number) => encodeId(RUN, s, q);
function tx(s: number, q: number, outcome: TxEntry['outcome'], tOffset: number, warning?: string): TxEntry {
  return {
    type: 'tx',
    id: id(s, q),
    session: s,
    seq: q,
    outcome,
    t: T0 + tOffset,
    ms: 1,
    server: 'x',
    warning,
  };
}

function ledger(txs: TxEntry[], sc = 'remote_apply', ssn = 'pg2'): Ledger {
  return { header: header(sc, ssn), txs, events: [], end: { type: 'end', t: T0, summary: {} }, warnings: [] };
}

const both = (...ids: string[]) => ({ customers: new Set(ids), orders: new Set(ids) });

test('everything acknowledged and present: OK, exit 0', () => {
  const l = ledger([tx(0, 1, 'ack', 100), tx(1, 1, 'ack', 150), tx(0, 2, 'ack', 1200)]);
  const r = compareLedger(l, both(id(0, 1), id(1, 1), id(0, 2)));
  assert.equal(r.totals.acknowledged, 3);
  assert.equal(r.lost.count, 0);
  assert.equal(r.exitCode, 0);
  assert.deepEqual(r.violations, []);
  assert.deepEqual(r.longestWriteGap, {
    ms: 1050,
    from: new Date(T0 + 150).toISOString(),
    to: new Date(T0 + 1200).toISOString(),
  });
  assert.deepEqual(r.acksPerSecond, [2, 1]);
});

test('a lost ack under remote_apply with a sync standby is a violation (exit 3)', () => {
  const l = ledger([tx(0, 1, 'ack', 10), tx(0, 2, 'ack', 20), tx(0, 3, 'ack', 30)]);
  const r = compareLedger(l, both(id(0, 1)));
  assert.equal(r.lost.count, 2);
  assert.deepEqual(r.lost.ids, [id(0, 2), id(0, 3)]);
  assert.deepEqual(r.lost.missing, { both: 2, customer: 0, order: 0 });
  assert.equal(r.lost.firstAckAt, new Date(T0 + 20).toISOString());
  assert.equal(r.lost.lastAckAt, new Date(T0 + 30).toISOString());
  assert.equal(r.promisesNoLoss, true);
  assert.equal(r.exitCode, 3);
  assert.match(r.violations[0] ?? '', /2 acknowledged .* lost .*remote_apply/);
});

test('the same loss under synchronous_commit=off is reported but not a violation; flags override', () => {
  const l = ledger([tx(0, 1, 'ack', 10), tx(0, 2, 'ack', 20)], 'off', '');
  const r = compareLedger(l, both(id(0, 1)));
  assert.equal(r.lost.count, 1);
  assert.equal(r.promisesNoLoss, false);
  assert.equal(r.exitCode, 0);
  const strict = compareLedger(l, both(id(0, 1)), { expectNoLoss: true });
  assert.equal(strict.exitCode, 3);
  assert.equal(strict.promiseSource, 'flag');
  const lax = compareLedger(ledger([tx(0, 1, 'ack', 10)]), both(), { expectNoLoss: false });
  assert.equal(lax.lost.count, 1);
  assert.equal(lax.exitCode, 0);
});

test('which settings promise no loss', () => {
  assert.equal(promisesNoLoss('remote_apply', 'pg2'), true);
  assert.equal(promisesNoLoss('on', 'FIRST 1 (pg1, pg2)'), true);
  assert.equal(promisesNoLoss('remote_write', 'pg2'), true);
  assert.equal(promisesNoLoss('remote_apply', ''), false); // no sync standby: local only
  assert.equal(promisesNoLoss('local', 'pg2'), false);
  assert.equal(promisesNoLoss('off', 'pg2'), false);
});

test('isSyncMode: the synchronous_commit modes that wait for the standby, as config or as SHOW prints them', () => {
  for (const m of ['on', 'remote_write', 'remote_apply', ' Remote_Apply\n'])
    assert.equal(isSyncMode(m), true, m);
  for (const m of ['off', 'local', '', 'remote']) assert.equal(isSyncMode(m), false, m);
});

test('unknown outcomes are resolved by presence: committed, not committed, torn', () => {
  const l = ledger([
    tx(0, 1, 'unknown', 1),
    tx(0, 2, 'unknown', 2),
    tx(1, 1, 'unknown', 3),
    tx(1, 2, 'ack', 4),
  ]);
  const present = {
    customers: new Set([id(0, 1), id(1, 1), id(1, 2)]),
    orders: new Set([id(0, 1), id(1, 2)]),
  };
  const r = compareLedger(l, present);
  assert.equal(r.totals.unknown, 3);
  assert.deepEqual(
    { c: r.unknown.committed, n: r.unknown.notCommitted, t: r.unknown.torn },
    { c: 1, n: 1, t: 1 },
  );
  assert.deepEqual(r.unknown.committedIds, [id(0, 1)]);
  assert.equal(r.lost.count, 0);
  // Half a transaction is an atomicity violation whatever its outcome.
  assert.equal(r.torn.count, 1);
  assert.equal(r.exitCode, 3);
});

test('half of an acknowledged transaction missing counts as lost and torn', () => {
  const l = ledger([tx(0, 1, 'ack', 1)], 'off', '');
  const r = compareLedger(l, { customers: new Set([id(0, 1)]), orders: new Set() });
  assert.equal(r.lost.count, 1);
  assert.deepEqual(r.lost.missing, { both: 0, customer: 0, order: 1 });
  assert.equal(r.torn.count, 1);
  assert.equal(r.exitCode, 3);
});

test('a failed transaction that is present is unexpected (exit 3); rows not in the ledger are unrecorded', () => {
  const l = ledger([tx(0, 1, 'fail', 1), tx(0, 2, 'fail', 2)]);
  const r = compareLedger(l, both(id(0, 1), id(0, 3)));
  assert.equal(r.unexpected.count, 1);
  assert.deepEqual(r.unexpected.ids, [id(0, 1)]);
  assert.equal(r.unrecorded.count, 1);
  assert.deepEqual(r.unrecorded.ids, [id(0, 3)]);
  assert.equal(r.exitCode, 3);
});

test('lost acks whose COMMIT warned of a cancelled sync wait do not break the promise', () => {
  const w = 'canceling wait for synchronous replication due to user request';
  const l = ledger([tx(0, 1, 'ack', 1, w), tx(0, 2, 'ack', 2)]);
  const r = compareLedger(l, both(id(0, 2)));
  assert.equal(r.lost.count, 1);
  assert.equal(r.lost.withSyncWarning, 1);
  assert.equal(r.acknowledgedWithSyncWarning, 1);
  assert.equal(r.exitCode, 0);
  assert.ok(r.warnings.some((x) => /cancelled/.test(x)));
});

test('id lists are capped but counts are exact; missing end line and ledger warnings are carried', () => {
  const txs = Array.from({ length: 50 }, (_, i) => tx(0, i + 1, 'ack', i));
  const l: Ledger = { ...ledger(txs, 'off', ''), end: undefined, warnings: ['cut'] };
  const r = compareLedger(l, both(), { listLimit: 5 });
  assert.equal(r.lost.count, 50);
  assert.equal(r.lost.ids.length, 5);
  assert.ok(r.warnings.includes('cut'));
  assert.ok(r.warnings.some((x) => /no end line/.test(x)));
});

test('gap and per-second helpers', () => {
  assert.equal(longestGap([]), null);
  assert.equal(longestGap([5]), null);
  assert.deepEqual(longestGap([30, 10, 100, 20]), { ms: 70, from: 30, to: 100 });
  assert.deepEqual(acksPerSecond(0, [0, 999, 1000, 3500, -5]), [3, 1, 0, 1]);
});
