import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UserError } from '../../src/util/errors.js';
import { describeTarget, parseDsn, parseKeywords, refusedForTls } from '../../src/workload/dsn.js';

const env = {};

test('multi-host keyword string with one port for all hosts', () => {
  const t = parseDsn(
    'host=10.213.0.11,10.213.0.12 port=5432 user=app dbname=postgres target_session_attrs=read-write connect_timeout=1',
    { env },
  );
  assert.deepEqual(t.endpoints, [
    { host: '10.213.0.11', port: 5432 },
    { host: '10.213.0.12', port: 5432 },
  ]);
  assert.equal(t.user, 'app');
  assert.equal(t.targetSessionAttrs, 'read-write');
  assert.equal(t.connectTimeoutMs, 1000);
});

test('per-host ports, quoting, options and password (never described)', () => {
  const t = parseDsn("host=a,b port=1,2 password='se cr\\'et' options='-c synchronous_commit=off'", { env });
  assert.deepEqual(
    t.endpoints.map((e) => e.port),
    [1, 2],
  );
  assert.equal(t.password, "se cr'et");
  assert.deepEqual(t.options, { synchronous_commit: 'off' });
  const d = describeTarget(t);
  assert.ok(!d.includes('se cr'));
  assert.match(d, /host=a,b port=1,2/);
  // The description parses back to the same target (the checker reuses the ledger's target).
  const back = parseDsn(d, { env });
  assert.deepEqual(back.endpoints, t.endpoints);
  assert.deepEqual(back.options, t.options);
});

test('URI and bare host:port forms (an HAProxy read-write port)', () => {
  const u = parseDsn('postgresql://app:pw@h1:5433,h2:5434/db?target_session_attrs=any', { env });
  assert.deepEqual(u.endpoints, [
    { host: 'h1', port: 5433 },
    { host: 'h2', port: 5434 },
  ]);
  assert.equal(u.user, 'app');
  assert.equal(u.password, 'pw');
  assert.equal(u.database, 'db');
  assert.equal(u.targetSessionAttrs, 'any');
  const b = parseDsn('10.213.0.14:5000', { env });
  assert.deepEqual(b.endpoints, [{ host: '10.213.0.14', port: 5000 }]);
  assert.equal(b.targetSessionAttrs, 'read-write');
});

test('bad connection strings are one-line user errors', () => {
  const bad = [
    '',
    'host=a port=x',
    'host=a,b port=1,2,3',
    'host=a frobnicate=1',
    'host=a target_session_attrs=prefer-standby',
    "host=a password='open",
    'host=a sslmode=verify-full',
    'host=a sslmode=on',
    'port=5432',
    'host=a connect_timeout=-1',
  ];
  for (const s of bad) {
    assert.throws(
      () => parseDsn(s, { env }),
      (e: unknown) => e instanceof UserError && !e.message.includes('\n'),
      s,
    );
  }
});

test('sslmode: verify-full and verify-ca carry the CA file; the target text keeps them for the checker', () => {
  const t = parseDsn('host=10.0.0.1 sslmode=verify-full sslrootcert=/etc/pgarbiter/tls/ca.crt', { env });
  assert.deepEqual(t.ssl, { mode: 'verify-full', rootCert: '/etc/pgarbiter/tls/ca.crt' });
  assert.match(describeTarget(t), / sslmode=verify-full sslrootcert=\/etc\/pgarbiter\/tls\/ca.crt$/);
  assert.deepEqual(parseDsn(describeTarget(t), { env }).ssl, t.ssl);
  assert.deepEqual(parseDsn('host=a sslmode=require', { env }).ssl, { mode: 'require', rootCert: undefined });
  assert.equal(parseDsn('host=a sslmode=prefer', { env }).ssl, undefined);
  // prefer (also no sslmode, as in libpq) and allow negotiate; disable and the strict modes do not.
  assert.equal(parseDsn('host=a sslmode=prefer', { env }).sslNegotiation, 'prefer');
  assert.equal(parseDsn('host=a', { env }).sslNegotiation, 'prefer');
  assert.equal(parseDsn('host=a sslmode=allow', { env }).sslNegotiation, 'allow');
  assert.equal(parseDsn('host=a sslmode=disable', { env }).sslNegotiation, undefined);
  assert.equal(parseDsn('host=a sslmode=require', { env }).sslNegotiation, undefined);
  assert.match(describeTarget(parseDsn('host=a', { env })), / sslmode=prefer$/);
  assert.equal(
    parseDsn(describeTarget(parseDsn('host=a sslmode=allow', { env })), { env }).sslNegotiation,
    'allow',
  );
});

test('keyword parser handles spaces around = and escaped characters', () => {
  assert.deepEqual(
    [...parseKeywords("host = a  user= 'x y'  application_name=a\\ b")],
    [
      ['host', 'a'],
      ['user', 'x y'],
      ['application_name', 'a b'],
    ],
  );
});

test('sslmode=prefer/allow try the other way only when the server refused the first for its encryption', () => {
  const noTls = new Error('The server does not support SSL connections');
  const hbaTlsOnly = Object.assign(
    new Error('no pg_hba.conf entry for host "10.0.0.9", user "app", database "postgres", no encryption'),
    { code: '28000' },
  );
  const badPassword = Object.assign(new Error('password authentication failed for user "app"'), {
    code: '28P01',
  });
  assert.equal(refusedForTls(noTls, true), true);
  assert.equal(refusedForTls(hbaTlsOnly, false), true);
  assert.equal(refusedForTls(hbaTlsOnly, true), false);
  assert.equal(refusedForTls(noTls, false), false);
  assert.equal(refusedForTls(badPassword, true), false);
  assert.equal(refusedForTls(badPassword, false), false);
  assert.equal(refusedForTls(new Error('connect ECONNREFUSED 10.0.0.9:5432'), true), false);
});
