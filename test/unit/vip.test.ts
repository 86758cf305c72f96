// The VIP's pure parts: address parsing, subnet checks, who holds it, arping's answer.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  arpingReplyMac,
  inSubnet,
  ipv4ToInt,
  parseVipAddress,
  shouldHoldVip,
  vipClientsToRelay,
  vipConfigProblem,
  vipInterfaceProblem,
} from '../../src/vip/vip.js';

describe('addresses', () => {
  test('ipv4ToInt', () => {
    assert.equal(ipv4ToInt('10.0.0.1'), 0x0a000001);
    assert.equal(ipv4ToInt('255.255.255.255'), 0xffffffff);
    assert.equal(ipv4ToInt('10.0.0.256'), null);
    assert.equal(ipv4ToInt('pg1'), null);
  });
  test('inSubnet', () => {
    assert.ok(inSubnet('10.213.16.10', '10.213.16.11', 24));
    assert.ok(!inSubnet('10.213.17.10', '10.213.16.11', 24));
    assert.ok(inSubnet('10.213.17.10', '10.213.16.11', 16));
    assert.ok(inSubnet('1.2.3.4', '9.9.9.9', 0));
  });
  test('parseVipAddress', () => {
    assert.deepEqual(parseVipAddress('10.0.0.10/24'), { ip: '10.0.0.10', prefixLen: 24 });
    assert.deepEqual(parseVipAddress('10.0.0.10/32'), { ip: '10.0.0.10', prefixLen: 32 });
    for (const bad of ['10.0.0.10', '10.0.0.10/33', '10.0.0.10/0', 'x/24', '10.0.0.300/24'])
      assert.match(parseVipAddress(bad) as string, /not an IPv4 address with its prefix length/);
    assert.match(parseVipAddress('10.0.0.0/24') as string, /network or broadcast/);
    assert.match(parseVipAddress('10.0.0.255/24') as string, /network or broadcast/);
  });
});

describe('config and interface checks', () => {
  const nodes = [
    { name: 'pg1', host: '10.0.0.11' },
    { name: 'pg2', host: '10.0.0.12' },
  ];
  const arbiter = { name: 'arbiter', host: '192.168.5.13' };
  test('an arbiter elsewhere is fine; the nodes must share the VIP subnet', () => {
    assert.equal(vipConfigProblem({ address: '10.0.0.10/24', interface: 'e0' }, nodes, arbiter), null);
    assert.match(
      vipConfigProblem({ address: '10.0.1.10/24', interface: 'e0' }, nodes, arbiter)!,
      /outside the database nodes' subnet/,
    );
    assert.match(
      vipConfigProblem({ address: '192.168.5.13/24', interface: 'e0' }, nodes, arbiter)!,
      /arbiter's own address/,
    );
  });
  test('nodes named by DNS name are not subnet-checked at load (the interface check covers it)', () => {
    const named = [
      { name: 'pg1', host: 'db1.example' },
      { name: 'pg2', host: 'db2.example' },
    ];
    assert.equal(vipConfigProblem({ address: '10.0.0.10/24', interface: 'e0' }, named, arbiter), null);
  });
  test('the interface must have an address whose subnet holds the VIP', () => {
    const vip = { ip: '10.0.0.10', prefixLen: 24, cidr: '10.0.0.10/24', iface: 'e0' };
    assert.equal(vipInterfaceProblem(vip, [{ ip: '10.0.0.11', prefixLen: 24 }]), null);
    assert.match(
      vipInterfaceProblem(vip, [{ ip: '10.9.0.11', prefixLen: 24 }])!,
      /outside e0's subnet \(10\.9\.0\.11\/24\)/,
    );
    // Holding the VIP itself does not make the interface part of the subnet.
    assert.match(vipInterfaceProblem(vip, [{ ip: '10.0.0.10', prefixLen: 24 }])!, /has no IPv4 address/);
    assert.match(vipInterfaceProblem(vip, [])!, /has no IPv4 address/);
  });
});

test('only the unfenced, writable record primary holds the VIP', () => {
  const primary = { isRecordPrimary: true, postgresUp: true, inRecovery: false, fenced: false };
  assert.equal(shouldHoldVip(primary), true);
  assert.equal(shouldHoldVip({ ...primary, fenced: true }), false);
  assert.equal(shouldHoldVip({ ...primary, isRecordPrimary: false }), false); // demoted by a newer term
  assert.equal(shouldHoldVip({ ...primary, inRecovery: true }), false); // standby / not yet promoted
  assert.equal(shouldHoldVip({ ...primary, inRecovery: null }), false); // unknown
  assert.equal(shouldHoldVip({ ...primary, postgresUp: false }), false);
});

test("arping's reply MAC", () => {
  const out =
    'ARPING 10.213.16.10 from 0.0.0.0 e0\nUnicast reply from 10.213.16.10 [82:0F:AA:01:02:03]  0.620ms\nSent 1 probes (1 broadcast(s))\nReceived 1 response(s)\n';
  assert.equal(arpingReplyMac(out), '82:0f:aa:01:02:03');
  assert.equal(
    arpingReplyMac('ARPING 10.213.16.10 from 0.0.0.0 e0\nSent 2 probes\nReceived 0 response(s)\n'),
    null,
  );
});

test("the VIP clients to relay: the primary's TCP sessions but the peer's, at most max", () => {
  const sessions = ['10.213.0.100:40000', '10.213.0.12:51000', '10.213.0.120:40001', '10.213.0.100:40002'];
  // The peer agent (10.213.0.12) probes our address: its session is not one to reset.
  assert.deepEqual(vipClientsToRelay(sessions, '10.213.0.12', 10), [
    '10.213.0.100:40000',
    '10.213.0.120:40001',
    '10.213.0.100:40002',
  ]);
  // A prefix of the peer's address is another host.
  assert.deepEqual(vipClientsToRelay(['10.213.0.120:40001'], '10.213.0.12', 10), ['10.213.0.120:40001']);
  assert.deepEqual(vipClientsToRelay(sessions, '10.213.0.12', 2), [
    '10.213.0.100:40000',
    '10.213.0.120:40001',
  ]);
  assert.deepEqual(vipClientsToRelay([], '10.213.0.12', 10), []);
});
