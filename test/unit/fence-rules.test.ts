// The fence's pure parts: the nft script, the reading of `nft list chain`, the budget split and
// the constructor's checks. The real netfilter is exercised in test/integration/fence.test.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { deniedByKernel, Fence, terminateAllowanceMs } from '../../src/fence/fence.js';
import { ruleSpec } from '../../src/fence/iptables.js';
import { leaseRemainingMs, nftLeaseRemoveScript, nftLeaseScript } from '../../src/fence/lease.js';
import {
  nftFenceRuleCount,
  nftFenceScript,
  nftHasFence,
  nftListArgv,
  nftTable,
  nftUnfenceScript,
} from '../../src/fence/nft.js';
import { nftOneLine } from '../../src/fence/nft-shell.js';

// What `nft list chain inet pgarbiter_fence_5432 input` prints after nftFenceScript (nft 1.0.6).
const LISTING = `table inet pgarbiter_fence_5432 {
	chain input {
		type filter hook input priority filter - 10; policy accept;
		iifname "lo" return
		ip saddr 10.214.0.12 return
		tcp dport 5432 reject with tcp reset
	}
}
`;

describe('nft fence script', () => {
  test('replaces the table in one transaction: loopback and the peer return, the port is reset', () => {
    const s = nftFenceScript(5432, ['10.214.0.12', 'fd00::12']);
    const lines = s.trim().split('\n');
    assert.deepEqual(lines.slice(0, 3), [
      'add table inet pgarbiter_fence_5432',
      'delete table inet pgarbiter_fence_5432',
      'table inet pgarbiter_fence_5432 {',
    ]);
    assert.match(s, /type filter hook input priority filter - 10; policy accept;/);
    assert.match(s, /^ {4}iifname "lo" return$/m);
    assert.match(s, /^ {4}ip saddr 10\.214\.0\.12 return$/m);
    assert.match(s, /^ {4}ip6 saddr fd00::12 return$/m);
    assert.equal((s.match(/reject/g) ?? []).length, 1, 'one reject rule');
    // The exemptions come before the reject (a chain is evaluated in order).
    assert.ok(s.indexOf('saddr') < s.indexOf('reject'));
    assert.ok(s.indexOf('"lo"') < s.indexOf('reject'));
    assert.doesNotMatch(s, /output/, 'outgoing traffic is not filtered');
  });

  test('no peer: nobody but loopback is exempt', () => {
    const s = nftFenceScript(6000, []);
    assert.doesNotMatch(s, /saddr/);
    assert.match(s, /tcp dport 6000 reject with tcp reset/);
  });

  test('only IP literals and valid ports reach nft', () => {
    assert.throws(() => nftFenceScript(5432, ['pg2.example']), /not an IP address/);
    assert.throws(() => nftFenceScript(5432, ['10.0.0.1; flush ruleset']), /not an IP address/);
    assert.throws(() => nftFenceScript(0, []), /invalid port/);
    assert.throws(() => nftUnfenceScript(70000), /invalid port/);
    assert.throws(() => nftListArgv(1.5), /invalid port/);
  });

  test('unfence removes the table whether or not it exists', () => {
    assert.equal(
      nftUnfenceScript(5432),
      `add table inet ${nftTable(5432)}\ndelete table inet ${nftTable(5432)}\n`,
    );
  });

  test('reading the listing', () => {
    assert.equal(nftHasFence(LISTING, 5432), true);
    assert.equal(nftHasFence(LISTING, 5433), false, 'another port is not our fence');
    assert.equal(nftHasFence(LISTING.replace(/.*reject.*\n/, ''), 5432), false);
    assert.equal(nftFenceRuleCount(LISTING, 5432), 1);
    assert.equal(nftFenceRuleCount(LISTING + LISTING, 5432), 2);
  });
});

describe('budget split', () => {
  test('the termination gets what the rule left, at least the rest share', () => {
    assert.equal(terminateAllowanceMs(500, 0.6, 10), 490);
    assert.equal(terminateAllowanceMs(500, 0.6, 300), 200);
    assert.equal(terminateAllowanceMs(500, 0.6, 450), 200, 'a slow rule does not starve the termination');
    assert.equal(terminateAllowanceMs(500, 0.6, 5000), 200);
    assert.equal(terminateAllowanceMs(250, 0.6, 0), 250);
  });

  test('the constructor checks its inputs and derives the rule timeout from the budget', () => {
    assert.throws(() => new Fence(0, '10.0.0.2', 500), /invalid port/);
    assert.throws(() => new Fence(5432, '10.0.0.2', 0), /budget must be positive/);
    assert.throws(() => new Fence(5432, '10.0.0.2', 500, { ruleShare: 1 }), /ruleShare/);
    assert.equal(new Fence(5432, '10.0.0.2', 500).ruleTimeoutMs, 2000);
    assert.equal(new Fence(5432, '10.0.0.2', 100).ruleTimeoutMs, 1000);
    assert.equal(new Fence(5432, '10.0.0.2', 500).mechanism, 'nft');
  });
});

describe('iptables rule', () => {
  test('with and without a peer exemption', () => {
    assert.deepEqual(ruleSpec(5432, '10.0.0.2').slice(0, 10), [
      'INPUT',
      '-p',
      'tcp',
      '--dport',
      '5432',
      '!',
      '-i',
      'lo',
      '!',
      '-s',
    ]);
    assert.ok(!ruleSpec(5432, null).includes('-s'));
    assert.deepEqual(ruleSpec(5432, null).slice(-2), ['--reject-with', 'tcp-reset']);
  });
});

test('deniedByKernel: what iptables and nft say without CAP_NET_ADMIN (seen in a container)', () => {
  assert.ok(
    deniedByKernel(
      'iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)',
    ),
  );
  assert.ok(deniedByKernel('netlink: Error: cache initialization failed: Operation not permitted'));
  assert.ok(!deniedByKernel('iptables: Bad rule (does a matching rule exist in that chain?).'));
  assert.ok(!deniedByKernel('spawn nft ENOENT'));
});

describe('nft lease script', () => {
  test('one transaction: the element with its timeout, the absolute bound rounded up, exemptions, both directions', () => {
    const s = nftLeaseScript(5432, ['10.1.0.12', '10.1.0.13', 'fd00::12'], {
      timeoutMs: 2345.6,
      untilSec: 1_796_000_000.2,
    });
    assert.deepEqual(s.trim().split('\n').slice(0, 3), [
      'add table inet pgarbiter_lease_5432',
      'delete table inet pgarbiter_lease_5432',
      'table inet pgarbiter_lease_5432 {',
    ]);
    assert.match(s, /elements = \{ 5432 timeout 2346ms \}/);
    assert.match(s, /^ {4}ip saddr \{ 10\.1\.0\.12, 10\.1\.0\.13 \} return$/m);
    assert.match(s, /^ {4}ip6 daddr \{ fd00::12 \} return$/m);
    assert.match(s, /^ {4}tcp dport @lease meta time < 1796000001 return$/m);
    assert.match(s, /^ {4}tcp dport 5432 reject with tcp reset$/m);
    assert.match(s, /^ {4}tcp sport 5432 drop$/m);
  });

  test('a lapsed lease: the table without the element blocks clients', () => {
    const s = nftLeaseScript(5432, [], null);
    assert.doesNotMatch(s, /elements/);
    assert.match(s, /tcp dport 5432 reject/);
  });

  test('refuses a host name and a bad port', () => {
    assert.throws(() => nftLeaseScript(5432, ['pg2'], null), /not an IP address/);
    assert.throws(() => nftLeaseScript(0, [], null), /invalid port/);
    assert.equal(
      nftLeaseRemoveScript(5432),
      'add table inet pgarbiter_lease_5432\ndelete table inet pgarbiter_lease_5432\n',
    );
  });

  test('reads what is left of the lease from `nft list set`', () => {
    assert.equal(leaseRemainingMs('elements = { 5432 timeout 2s500ms expires 1s16ms }'), 1016);
    assert.equal(leaseRemainingMs('elements = { 5432 timeout 3s expires 796ms }'), 796);
    assert.equal(leaseRemainingMs('elements = { 5432 timeout 10m expires 9m59s2ms }'), 599_002);
    assert.equal(leaseRemainingMs('set lease {\n type inet_service\n flags timeout\n}'), 0);
  });
});

test("nftOneLine: the lease's script as one line for nft -i, statement for statement", () => {
  const script = nftLeaseScript(5432, ['10.0.0.2'], { timeoutMs: 2150, untilSec: 1_800_000_000 });
  const line = nftOneLine(`# a comment\n${script}`);
  assert.ok(!line.includes('\n'), 'one line');
  assert.ok(!line.includes('#'), 'a comment would end the line: dropped');
  const statements = script
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  assert.equal(line, statements.join('; '));
  assert.match(line, /^add table inet pgarbiter_lease_5432; delete table inet pgarbiter_lease_5432; table /);
  assert.equal(
    nftOneLine(nftLeaseRemoveScript(5432)),
    'add table inet pgarbiter_lease_5432; delete table inet pgarbiter_lease_5432',
  );
});
