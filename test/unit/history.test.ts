// The history store (src/history/store.ts), the arbiter's choice of what to keep
// (src/arbiter/telemetry.ts) and the CLI's merge (src/cluster/history.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { historySchema } from '../../src/api/protocol.js';
import { historyKindOf } from '../../src/arbiter/telemetry.js';
import { mergeHistories, renderHistory } from '../../src/cluster/history.js';
import { HistoryStore } from '../../src/history/store.js';

const dir = mkdtempSync(join(tmpdir(), 'pgarbiter-history-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(dir, `h${n++}.jsonl`);

/** A clock that moves one second per call. */
function clock(start = Date.parse('2026-11-23T10:00:00Z')) {
  let t = start;
  return () => {
    t += 1000;
    return new Date(t);
  };
}

test('entries survive a reload, in order, with their seq', () => {
  const path = fresh();
  const h = new HistoryStore(path, 'arbiter', 1000, undefined, clock());
  h.add({ kind: 'grant', term: 2, rule: 'promote', detail: 'granted term 2 to pg2' });
  h.add({ kind: 'maintenance', term: 2, rule: 'maintenance', detail: 'maintenance on' });
  const again = new HistoryStore(path, 'arbiter');
  assert.deepEqual(again.list(), h.list());
  assert.deepEqual(
    again.list().map((e) => [e.seq, e.kind, e.term]),
    [
      [0, 'grant', 2],
      [1, 'maintenance', 2],
    ],
  );
  // New entries go on from the last seq.
  assert.equal(again.add({ kind: 'adopt', term: 3, rule: 'adopt', detail: 'x' }).seq, 2);
  assert.ok(historySchema.safeParse(again.body()).success, 'the body is what the protocol says');
});

test('bounded: only the last max entries are kept, in memory and on disk', () => {
  const path = fresh();
  const h = new HistoryStore(path, 'pg1', 10);
  for (let i = 0; i < 45; i++) h.add({ kind: 'fence', term: i, rule: 'fence-isolated', detail: `#${i}` });
  assert.equal(h.list().length, 10);
  assert.deepEqual(
    h.list().map((e) => e.term),
    [35, 36, 37, 38, 39, 40, 41, 42, 43, 44],
  );
  const lines = readFileSync(path, 'utf8').trim().split('\n').length;
  assert.ok(lines <= 20, `the file is compacted (${lines} lines)`);
  const again = new HistoryStore(path, 'pg1', 10);
  assert.deepEqual(
    again.list().map((e) => e.term),
    [35, 36, 37, 38, 39, 40, 41, 42, 43, 44],
  );
});

test('repeats are one entry with a count and its first time, also after a reload', () => {
  const path = fresh();
  const h = new HistoryStore(path, 'arbiter', 1000, undefined, clock());
  const same = (last: { kind: string }) => last.kind === 'refusal';
  h.add({ kind: 'grant', term: 1, rule: 'promote', detail: 'g' });
  h.addOrRepeat({ kind: 'refusal', term: 1, rule: 'promote', detail: 'not lost 10 ms' }, same);
  h.addOrRepeat({ kind: 'refusal', term: 1, rule: 'promote', detail: 'not lost 20 ms' }, same);
  const r = h.addOrRepeat({ kind: 'refusal', term: 1, rule: 'promote', detail: 'not lost 30 ms' }, same);
  assert.equal(h.list().length, 2);
  assert.equal(r.count, 3);
  assert.equal(r.detail, 'not lost 30 ms');
  assert.equal(r.firstAt, '2026-11-23T10:00:02.000Z');
  assert.equal(r.at, '2026-11-23T10:00:04.000Z');
  assert.deepEqual(new HistoryStore(path, 'arbiter').list(), h.list());
});

test('a bad file is tolerated: bad lines skipped (and warned about), the rest kept', () => {
  const path = fresh();
  const h = new HistoryStore(path, 'pg2');
  h.add({ kind: 'promote', term: 2, rule: 'promote-on-record', detail: 'promoted for term 2' });
  writeFileSync(path, `${readFileSync(path, 'utf8')}{"seq": 1, "torn\nnot json at all\n{"seq":2}\n`, {
    flag: 'w',
  });
  const warnings: string[] = [];
  const again = new HistoryStore(path, 'pg2', 1000, (m) => warnings.push(m));
  assert.deepEqual(
    again.list().map((e) => e.kind),
    ['promote'],
  );
  assert.match(warnings.join('\n'), /3 unreadable line/);
  // The file was rewritten without them.
  assert.equal(readFileSync(path, 'utf8').trim().split('\n').length, 1);
  // A file that is not even text of lines, or a directory: an empty history, no exception.
  writeFileSync(path, Buffer.from([0xff, 0x00, 0x12]));
  assert.deepEqual(new HistoryStore(path, 'pg2').list(), []);
  const w2: string[] = [];
  const onDir = new HistoryStore(dir, 'pg2', 1000, (m) => w2.push(m));
  assert.deepEqual(onDir.list(), []);
  onDir.add({ kind: 'start', term: 1, rule: null, detail: 'x' });
  assert.ok(w2.length >= 2, 'unreadable and unwritable are warned about, not thrown');
});

test('the arbiter keeps record changes and refusals, not routine confirmations', () => {
  assert.equal(historyKindOf('grant', true), 'grant');
  assert.equal(historyKindOf('refusal', false), 'refusal');
  assert.equal(historyKindOf('confirm', true), null);
  assert.equal(historyKindOf('unchanged', true), null);
  assert.equal(historyKindOf('maintenance', true), 'maintenance');
});

test('the CLI merges members by time and names the silent ones', () => {
  const e = (member: string, seq: number, at: string, kind: 'grant' | 'fence' | 'rejoin') => ({
    seq,
    at,
    member,
    kind,
    term: 2,
    rule: null,
    detail: kind,
  });
  const h = mergeHistories(
    [
      { member: 'arbiter', entries: [e('arbiter', 0, '2026-11-23T10:00:03.000Z', 'grant')] },
      {
        member: 'pg1',
        entries: [
          e('pg1', 5, '2026-11-23T10:00:01.000Z', 'fence'),
          e('pg1', 6, '2026-11-23T10:00:09.000Z', 'rejoin'),
        ],
      },
      { member: 'pg2', entries: null },
    ],
    'arbiter',
  );
  assert.deepEqual(
    h.entries.map((x) => x.kind),
    ['fence', 'grant', 'rejoin'],
  );
  assert.deepEqual(h.unreachable, ['pg2']);
  const text = renderHistory(h);
  assert.match(text, /2026-11-23 10:00:03\.000/);
  assert.match(text, /pg2 did not answer/);
  assert.match(renderHistory({ entries: [], unreachable: [] }), /no events recorded/);
});
