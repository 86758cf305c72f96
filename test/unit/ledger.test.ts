import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { UserError } from '../../src/util/errors.js';
import { encodeId } from '../../src/workload/ids.js';
import {
  ackedBy,
  endsWithNewline,
  LEDGER_FORMAT,
  LEDGER_VERSION,
  LedgerError,
  type LedgerHeader,
  LedgerTail,
  LedgerWriter,
  ledgerTxs,
  parseLedger,
  readLedger,
  type TxEntry,
} from '../../src/workload/ledger.js';

const RUN = 4711;
const header: LedgerHeader = {
  type: 'header',
  format: LEDGER_FORMAT,
  version: LEDGER_VERSION,
  runId: `r${RUN}`,
  run: RUN,
  startedAt: '2026-01-01T00:00:00.000Z',
  startedAtMs: Date.parse('2026-01-01T00:00:00.000Z'),
  target: 'host=127.0.0.1 port=5432 user=app dbname=postgres target_session_attrs=read-write',
  sessions: 2,
  server: '127.0.0.1:5432',
  serverVersion: '15.18',
  synchronousCommit: 'remote_apply',
  synchronousStandbyNames: 'pg2',
  systemIdentifier: '7300000000000000001',
  tables: ['customers', 'orders'],
};

function tx(
  session: number,
  seq: number,
  outcome: TxEntry['outcome'],
  t = header.startedAtMs + seq,
): TxEntry {
  return {
    type: 'tx',
    id: encodeId(RUN, session, seq),
    session,
    seq,
    outcome,
    t,
    ms: 1,
    server: '127.0.0.1:5432',
  };
}

const lines = (...xs: object[]) => xs.map((x) => `${JSON.stringify(x)}\n`).join('');

test('a complete ledger parses into header, transactions, events and end', () => {
  const text = lines(
    header,
    { type: 'event', t: 1, session: 0, event: 'connected', server: '127.0.0.1:5432' },
    tx(0, 1, 'ack'),
    tx(1, 1, 'fail'),
    tx(0, 2, 'unknown'),
    { type: 'end', t: 2, summary: {} },
  );
  const l = parseLedger(text, 'x.jsonl');
  assert.equal(l.header.run, RUN);
  assert.deepEqual(
    l.txs.map((t) => t.outcome),
    ['ack', 'fail', 'unknown'],
  );
  assert.equal(l.events.length, 1);
  assert.ok(l.end);
  assert.deepEqual(l.warnings, []);
});

test('a cut last line is tolerated with a warning', () => {
  const full = lines(header, tx(0, 1, 'ack'), tx(0, 2, 'ack'));
  const cut = full.slice(0, full.length - 25); // the writer died mid-line
  const l = parseLedger(cut, 'x.jsonl');
  assert.equal(l.txs.length, 1);
  assert.equal(l.warnings.length, 1);
  assert.match(l.warnings[0] ?? '', /x\.jsonl:3: last line is incomplete/);
});

test('a corrupt line in the middle is an error naming the line', () => {
  const text = `${lines(header, tx(0, 1, 'ack'))}{"type":"tx","id":\n${lines(tx(0, 3, 'ack'))}`;
  assert.throws(
    () => parseLedger(text, 'x.jsonl'),
    (e: unknown) =>
      e instanceof LedgerError && e instanceof UserError && /x\.jsonl:3: not valid JSON/.test(e.message),
  );
});

test('structural errors: empty, no header, second header, bad outcome, duplicate id, id not of this run', () => {
  assert.throws(() => parseLedger('', 'e'), /ledger is empty/);
  assert.throws(() => parseLedger(lines(tx(0, 1, 'ack')), 'e'), /e:1: the first line must be the header/);
  assert.throws(() => parseLedger(lines({ ...header, format: 'other' }), 'e'), /not a pgarbiter ledger/);
  assert.throws(() => parseLedger(lines({ ...header, version: 99 }), 'e'), /version 99 is not supported/);
  assert.throws(() => parseLedger(lines(header, header), 'e'), /e:2: a second header/);
  assert.throws(
    () => parseLedger(lines(header, { ...tx(0, 1, 'ack'), outcome: 'maybe' }), 'e'),
    /e:2: .*unknown outcome "maybe"/,
  );
  assert.throws(
    () => parseLedger(lines(header, tx(0, 1, 'ack'), tx(0, 1, 'fail')), 'e'),
    /e:3: id .* line 2/,
  );
  assert.throws(
    () => parseLedger(lines(header, { ...tx(0, 1, 'ack'), id: encodeId(RUN + 1, 0, 1) }), 'e'),
    /does not encode run 4711/,
  );
  assert.throws(
    () => parseLedger(lines(header, { type: 'end', t: 1, summary: {} }, tx(0, 1, 'ack')), 'e'),
    /after the end/,
  );
  assert.throws(() => parseLedger(lines(header, [1, 2]), 'e'), /must be a JSON object/);
});

test('LedgerWriter appends whole lines, refuses an existing file, and readLedger streams it back', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgw-ledger-'));
  try {
    const path = join(dir, 'l.jsonl');
    const w = new LedgerWriter(path);
    w.append(header);
    for (let i = 1; i <= 1000; i++) w.append(tx(i % 2, Math.ceil(i / 2), i % 7 === 0 ? 'unknown' : 'ack'));
    w.sync();
    // Readable while the writer is still open: every appended line is already in the file.
    assert.equal(readFileSync(path, 'utf8').split('\n').length, 1002);
    w.close();
    w.close(); // idempotent
    assert.ok(endsWithNewline(path));
    assert.throws(() => new LedgerWriter(path), /already exists/);
    const l = await readLedger(path);
    assert.equal(l.txs.length, 1000);
    assert.equal(l.txs.filter((t) => t.outcome === 'unknown').length, 142);

    // Cut in the middle of the last line, as a kill -9 during write(2) would leave it.
    const text = readFileSync(path, 'utf8');
    writeFileSync(path, text.slice(0, text.length - 10));
    const cut = await readLedger(path);
    assert.equal(cut.txs.length, 999);
    assert.match(cut.warnings[0] ?? '', /:1001: last line is incomplete/);

    await assert.rejects(readLedger(join(dir, 'missing.jsonl')), (e: unknown) => e instanceof UserError);
    await assert.rejects(readLedger(dir), /is not a file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('LedgerTail follows a growing ledger: complete lines only, typed, checked; ackedBy matches the address', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgw-tail-'));
  try {
    const path = join(dir, 'l.jsonl');
    const tail = new LedgerTail(path);
    assert.deepEqual(tail.poll(), [], 'no file yet: nothing');
    assert.deepEqual(ledgerTxs(path), []);
    const first = lines(header, tx(0, 1, 'ack'), { ...tx(0, 2, 'fail'), server: '10.0.0.12:5432' });
    const next = lines({ ...tx(1, 1, 'ack'), server: '10.0.0.1:5432' });
    // The second line is being written: only the header and the first transaction are complete.
    writeFileSync(path, first + next.slice(0, 20));
    assert.deepEqual(
      tail.poll().map((t) => t.id),
      [tx(0, 1, 'ack').id, tx(0, 2, 'fail').id],
    );
    writeFileSync(path, first + next);
    assert.equal(tail.poll().length, 3);
    assert.deepEqual(
      tail.acks().map((t) => t.server),
      ['127.0.0.1:5432', '10.0.0.1:5432'],
    );
    // 10.0.0.1 is not 10.0.0.12, and a failed transaction is no acknowledgement.
    assert.deepEqual(
      tail.acks('10.0.0.1').map((t) => t.id),
      [tx(1, 1, 'ack').id],
    );
    assert.equal(tail.acks('10.0.0.12').length, 0);
    assert.equal(ledgerTxs(path).length, 3, 'ledgerTxs reads the same from the start');
    assert.equal(ackedBy({ ...tx(0, 9, 'ack'), server: '[::1]:5432' }, '::1'), true);
    assert.equal(ackedBy({ ...tx(0, 9, 'ack'), server: null }, '127.0.0.1'), false);
    // A corrupt line in the middle is an error, as for readLedger.
    writeFileSync(path, `${first}{"type":"tx", oops\n${next}`);
    assert.throws(() => new LedgerTail(path).poll(), /not valid JSON/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
