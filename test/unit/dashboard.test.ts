// The dashboard's pure parts: the token check, the actions, the links, the events, the rate.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  actionEvent,
  deriveLinks,
  historyEvent,
  parseAction,
  parseHistoryJson,
  tokenMatches,
  writesPerSecond,
} from '../../src/dashboard/model.js';
import { renderPage } from '../../src/dashboard/page.js';
import type { TxEntry } from '../../src/workload/ledger.js';

describe('dashboard: token', () => {
  test('the right token, in a Bearer header', () => {
    assert.equal(tokenMatches('Bearer abc123', ['abc123']), true);
    assert.equal(tokenMatches('Bearer s3cretsecret', ['abc123', 's3cretsecret']), true);
  });
  test('wrong, missing, malformed or empty tokens are refused', () => {
    assert.equal(tokenMatches('Bearer abc124', ['abc123']), false);
    assert.equal(tokenMatches('Bearer abc', ['abc123']), false);
    assert.equal(tokenMatches(undefined, ['abc123']), false);
    assert.equal(tokenMatches('abc123', ['abc123']), false);
    assert.equal(tokenMatches('Bearer ', ['']), false);
    assert.equal(tokenMatches('Bearer x', ['', '']), false);
  });
});

describe('dashboard: actions', () => {
  test('valid actions parse', () => {
    assert.deepEqual(parseAction({ action: 'isolate', host: 'pg1' }), {
      ok: true,
      action: { action: 'isolate', host: 'pg1' },
    });
    assert.equal(parseAction({ action: 'loss', host: 'pg2', percent: 30 }).ok, true);
    assert.equal(parseAction({ action: 'maintenance', on: true }).ok, true);
    assert.equal(parseAction({ action: 'switchover' }).ok, true);
  });
  test('bad actions are refused with the cause', () => {
    for (const bad of [
      null,
      'isolate',
      { action: 'rm -rf' },
      { action: 'isolate', host: 'client' },
      { action: 'isolate', host: 'pg1; reboot' },
      { action: 'loss', host: 'pg1', percent: 101 },
      { action: 'loss', host: 'pg1', percent: 1.5 },
      { action: 'isolate', host: 'pg1', extra: 1 },
      { action: 'partition', a: 'pg1', b: 'pg1' },
    ]) {
      const r = parseAction(bad);
      assert.equal(r.ok, false, JSON.stringify(bad));
      if (!r.ok) assert.ok(r.error.length > 0);
    }
  });
  test('an action becomes an event with a chart mark (not for a failure)', () => {
    const ok = actionEvent(1000, { action: 'isolate', host: 'pg1' }, 'e0 down', true);
    assert.equal(ok.mark, 'isolate pg1');
    assert.equal(ok.text, 'isolate pg1: e0 down');
    assert.equal(actionEvent(1000, { action: 'heal', host: 'pg1' }, 'boom', false).mark, null);
  });
});

describe('dashboard: links', () => {
  const host = (h: string, link = 'up', bridge: string | null = 'br0', present = true) => ({
    host: h,
    link,
    bridge,
    present,
  });
  test('up, cut (e0 down or off the bridge), lossy, missing, frozen, partitions', () => {
    const l = deriveLinks(
      [
        host('pg1', 'down'),
        host('pg2'),
        host('arbiter', 'up', 'br-iso'),
        host('client', 'missing', null, false),
      ],
      [['pg2', 'arbiter']],
      { pg2: 30 },
      new Set(['arbiter']),
    );
    assert.deepEqual(
      l.hosts.map((h) => [h.host, h.state, h.loss, h.frozen]),
      [
        ['pg1', 'cut', 0, false],
        ['pg2', 'lossy', 30, false],
        ['arbiter', 'cut', 0, true],
        ['client', 'missing', 0, false],
      ],
    );
    assert.deepEqual(l.partitions, [{ a: 'pg2', b: 'arbiter' }]);
  });
  test('a healthy lab: every link up, no partition', () => {
    const l = deriveLinks([host('pg1'), host('pg2')], [], {});
    assert.deepEqual(
      l.hosts.map((h) => h.state),
      ['up', 'up'],
    );
    assert.deepEqual(l.partitions, []);
  });
});

describe('dashboard: events', () => {
  const entry = {
    seq: 3,
    at: '2026-01-01T00:00:01.000Z',
    member: 'arbiter',
    kind: 'grant',
    term: 2,
    rule: 'promote',
    detail: 'pg2 promoted',
  };
  test('history --json parses; a grant is marked on the chart', () => {
    const h = parseHistoryJson(JSON.stringify({ entries: [entry], unreachable: ['pg1'] }));
    assert.deepEqual(h.unreachable, ['pg1']);
    const e = historyEvent(h.entries[0]!);
    assert.equal(e.t, Date.parse(entry.at));
    assert.equal(e.mark, 'grant arbiter');
    assert.match(e.text, /term 2, promote\): pg2 promoted/);
  });
  test('a refusal is an event without a mark; repeats get their own key', () => {
    const r = { ...entry, kind: 'refusal', count: 4 };
    const h = parseHistoryJson(JSON.stringify({ entries: [r], unreachable: [] }));
    const e = historyEvent(h.entries[0]!);
    assert.equal(e.mark, null);
    assert.notEqual(e.key, historyEvent({ ...h.entries[0]!, count: 5 }).key);
  });
  test('bad history output is an error, not an empty list', () => {
    assert.throws(() => parseHistoryJson('error: no lab'), /no JSON/);
    assert.throws(() => parseHistoryJson('{"entries":[{"kind":"nope"}],"unreachable":[]}'), /unexpected/);
  });
});

describe('dashboard: writes per second', () => {
  const tx = (t: number, outcome: TxEntry['outcome']): TxEntry => ({
    type: 'tx',
    id: `x${t}`,
    session: 1,
    seq: t,
    outcome,
    t,
    ms: 1,
    server: '10.0.0.1:5432',
  });
  test('buckets by whole second, acks and failures apart, outside the window ignored', () => {
    const pts = writesPerSecond(
      [
        tx(999, 'ack'),
        tx(1000, 'ack'),
        tx(1500, 'ack'),
        tx(1999, 'fail'),
        tx(2500, 'unknown'),
        tx(3000, 'ack'),
      ],
      1000,
      3000,
    );
    assert.deepEqual(pts, [
      { t: 1000, acks: 2, fails: 1 },
      { t: 2000, acks: 0, fails: 1 },
    ]);
  });
});

describe('dashboard: page', () => {
  test('one self-contained page: Chart.js inlined, no external script or stylesheet', () => {
    const html = renderPage();
    assert.match(html, /^<!doctype html>/);
    assert.ok(html.includes('new EventSource'));
    assert.ok(html.length > 100_000, 'Chart.js is inlined');
    assert.doesNotMatch(html, /<script[^>]+src=/);
    assert.doesNotMatch(html, /<link[^>]+stylesheet/);
  });
});
