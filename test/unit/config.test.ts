// Config: durations, the timing rule, and validation errors (clear, and nothing half-applied).
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  loadConfig,
  parseDuration,
  parseTimingSet,
  resolveTiming,
  type TIMING_PROFILES,
  type Timing,
  timingRuleViolation,
  validateConfig,
} from '../../src/config.js';
import { UserError } from '../../src/util/errors.js';

describe('parseDuration', () => {
  const ok: [string | number, number][] = [
    ['500ms', 500],
    ['3s', 3000],
    ['1.5s', 1500],
    ['2m', 120_000],
    ['0.5m', 30_000],
    ['250', 250],
    [' 3 s ', 3000],
    ['1.0005s', 1001],
    ['0ms', 0],
    [750, 750],
    [0, 0],
  ];
  for (const [input, ms] of ok)
    test(`${JSON.stringify(input)} -> ${ms} ms`, () => assert.equal(parseDuration(input), ms));

  const bad = ['', 'abc', '3h', '-1s', '1,5s', 's', '1e3', '3 seconds', '.5s', '5s5'];
  for (const input of bad)
    test(`${JSON.stringify(input)} is refused with a hint`, () => {
      assert.throws(
        () => parseDuration(input),
        (e: Error) => e.message === `not a duration: "${input}" (use e.g. 500ms, 3s, 1m)`,
      );
    });
});

function timingFrom(p: keyof typeof TIMING_PROFILES): Timing {
  return resolveTiming({ profile: p });
}

describe('the timing rule: fence_timeout + probe_interval + fence_action_budget < failover_timeout', () => {
  for (const p of ['default', 'fast'] as const) {
    test(`the built-in "${p}" profile satisfies it`, () => {
      const t = timingFrom(p);
      assert.equal(timingRuleViolation(t), null);
      assert.ok(t.fenceTimeoutMs + t.probeIntervalMs + t.fenceActionBudgetMs < t.failoverTimeoutMs);
      assert.ok(t.probeTimeoutMs <= t.probeIntervalMs);
    });
  }

  test('resolveTiming takes the profile and overrides field by field', () => {
    assert.deepEqual(resolveTiming({ profile: 'fast', failover_timeout: 5000 }), {
      probeIntervalMs: 250,
      probeTimeoutMs: 200,
      fenceTimeoutMs: 1000,
      fenceActionBudgetMs: 250,
      failoverTimeoutMs: 5000,
      syncStallTimeoutMs: 1500,
    });
  });

  test('equality is a violation, with every number in the message', () => {
    const t = {
      ...timingFrom('default'),
      fenceTimeoutMs: 2000,
      probeIntervalMs: 500,
      fenceActionBudgetMs: 500,
      failoverTimeoutMs: 3000,
    };
    assert.equal(
      timingRuleViolation(t),
      'timing rule violated: fence_timeout + probe_interval + fence_action_budget ' +
        "(2000 + 500 + 500 = 3000 ms: the fence's deadline and the lease's duration) must be less than " +
        'failover_timeout (3000 ms), so the primary is fenced and its lease lapsed before any grant',
    );
  });

  test('one millisecond more failover_timeout satisfies it', () => {
    const t = {
      ...timingFrom('default'),
      fenceTimeoutMs: 2000,
      probeIntervalMs: 500,
      fenceActionBudgetMs: 500,
    };
    assert.equal(timingRuleViolation({ ...t, failoverTimeoutMs: 3001 }), null);
  });

  test('a fence_timeout raised past the margin is a violation', () => {
    const v = timingRuleViolation({ ...timingFrom('fast'), fenceTimeoutMs: 1300 });
    assert.match(
      v ?? '',
      /\(1300 \+ 250 \+ 250 = 1800 ms: .*\) must be less than failover_timeout \(1750 ms\)/,
    );
  });

  test('probe_timeout above probe_interval is a violation; equal is allowed', () => {
    const t = timingFrom('default');
    assert.equal(
      timingRuleViolation({ ...t, probeTimeoutMs: t.probeIntervalMs + 1 }),
      `probe_timeout (${t.probeIntervalMs + 1} ms) must not exceed probe_interval (${t.probeIntervalMs} ms)`,
    );
    assert.equal(timingRuleViolation({ ...t, probeTimeoutMs: t.probeIntervalMs }), null);
  });
});

function doc(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    node: 'pg1',
    secret: 'correct-horse',
    nodes: [
      { name: 'pg1', host: '10.1.0.11' },
      { name: 'pg2', host: '10.1.0.12' },
    ],
    arbiter: { name: 'arbiter', host: '10.1.0.13' },
    postgres: { admin_password: 'a', replication_password: 'r' },
    ...over,
  };
}

function refused(d: unknown, message: RegExp): void {
  assert.throws(
    () => validateConfig(d, 'test.yaml'),
    (e: Error) => {
      assert.ok(e instanceof UserError, `expected a UserError, got ${e}`);
      assert.match(e.message, /^test\.yaml: /);
      assert.match(e.message, message);
      return true;
    },
  );
}

describe('validateConfig', () => {
  test('a minimal config gets its defaults and the default timing profile', () => {
    const c = validateConfig(doc());
    assert.equal(c.cluster_name, 'pgarbiter');
    assert.equal(c.api_port, 8008);
    assert.equal(c.postgres.port, 5432);
    assert.equal(c.postgres.synchronous_commit, 'remote_apply');
    assert.equal(c.postgres.sync_mode, 'fallback');
    assert.equal(c.rejoin, 'auto');
    assert.deepEqual(c.timing, timingFrom('default'));
  });

  test('the lease is on by default; off is accepted', () => {
    assert.equal(validateConfig(doc()).lease, 'on');
    assert.equal(validateConfig(doc({ lease: 'off' })).lease, 'off');
  });

  test('the arbiter may be the node; durations accept strings; the fast profile resolves', () => {
    const c = validateConfig(
      doc({ node: 'arbiter', timing: { profile: 'fast', failover_timeout: '2.5s', probe_timeout: 100 } }),
    );
    assert.equal(c.node, 'arbiter');
    assert.equal(c.timing.failoverTimeoutMs, 2500);
    assert.equal(c.timing.probeTimeoutMs, 100);
    assert.equal(c.timing.fenceTimeoutMs, 1000);
  });

  test('does not modify the document it was given', () => {
    const d = doc({ timing: { profile: 'fast', fence_timeout: '1s' } });
    const copy = structuredClone(d);
    validateConfig(d);
    assert.deepEqual(d, copy);
  });

  const cases: { name: string; doc: unknown; message: RegExp }[] = [
    { name: 'not an object', doc: 'hello', message: /invalid config: \(top\): / },
    { name: 'missing node', doc: doc({ node: undefined }), message: /invalid config: node: / },
    {
      name: 'missing secret',
      doc: doc({ secret: undefined }),
      message: /secret_file \(a file holding the secret, mode 0600\) or secret is required/,
    },
    {
      name: 'short secret',
      doc: doc({ secret: 'short' }),
      message: /secret: secret must be at least 8 characters/,
    },
    { name: 'missing nodes', doc: doc({ nodes: undefined }), message: /nodes: / },
    {
      name: 'one database node',
      doc: doc({ nodes: [{ name: 'pg1', host: 'a' }] }),
      message: /nodes: exactly two database nodes \(primary and standby\)/,
    },
    { name: 'missing arbiter host', doc: doc({ arbiter: { name: 'arbiter' } }), message: /arbiter\.host: / },
    {
      name: 'missing replication password',
      doc: doc({ postgres: { admin_password: 'a' } }),
      message: /postgres\.replication_password_file .* or postgres\.replication_password is required/,
    },
    { name: 'unknown top-level key', doc: doc({ fence_timeout: '2s' }), message: /\(top\): .*fence_timeout/ },
    {
      name: 'unknown key in postgres',
      doc: doc({ postgres: { admin_password: 'a', replication_password: 'r', sync: true } }),
      message: /postgres: .*"sync"/,
    },
    {
      name: 'unknown key in a node',
      doc: doc({
        nodes: [
          { name: 'pg1', host: 'a', port: 1 },
          { name: 'pg2', host: 'b' },
        ],
      }),
      message: /nodes\.0: .*"port"/,
    },
    { name: 'unknown key in timing', doc: doc({ timing: { ttl: 30 } }), message: /timing: .*"ttl"/ },
    {
      name: 'bad synchronous_commit',
      doc: doc({
        postgres: { admin_password: 'a', replication_password: 'r', synchronous_commit: 'remote' },
      }),
      message: /postgres\.synchronous_commit: .*remote_apply/,
    },
    {
      name: 'bad sync_mode',
      doc: doc({ postgres: { admin_password: 'a', replication_password: 'r', sync_mode: 'lenient' } }),
      message: /postgres\.sync_mode: /,
    },
    { name: 'bad node name', doc: doc({ node: 'PG1' }), message: /node: lowercase letters, digits/ },
    { name: 'bad port', doc: doc({ api_port: 70000 }), message: /api_port: / },
    { name: 'bad rejoin', doc: doc({ rejoin: 'sometimes' }), message: /rejoin: / },
    { name: 'unknown profile', doc: doc({ timing: { profile: 'slow' } }), message: /timing\.profile: / },
    {
      name: 'bad duration',
      doc: doc({ timing: { fence_timeout: 'soon' } }),
      message: /timing\.fence_timeout: not a duration: "soon"/,
    },
    {
      name: 'zero duration',
      doc: doc({ timing: { fence_timeout: '0s' } }),
      message: /timing\.fence_timeout: must be positive: "0s"/,
    },
    {
      name: 'negative number duration',
      doc: doc({ timing: { probe_interval: -5 } }),
      message: /timing\.probe_interval: /,
    },
    {
      name: 'duplicate node names',
      doc: doc({
        nodes: [
          { name: 'pg1', host: 'a' },
          { name: 'pg1', host: 'b' },
        ],
      }),
      message: /node names must be distinct/,
    },
    {
      name: 'arbiter named like a database node',
      doc: doc({ arbiter: { name: 'pg2', host: 'c' } }),
      message: /node names must be distinct/,
    },
    {
      name: 'node not in the cluster',
      doc: doc({ node: 'pg3' }),
      message: /node "pg3" is not one of pg1, pg2, arbiter/,
    },
    {
      name: 'initial_primary not a database node',
      doc: doc({ initial_primary: 'arbiter' }),
      message: /initial_primary "arbiter" is not a database node/,
    },
    {
      name: 'timing rule broken by an override',
      doc: doc({ timing: { failover_timeout: '2.35s' } }),
      message:
        /timing rule violated: .*\(1500 \+ 600 \+ 250 = 2350 ms: .*lease's duration\) must be less than failover_timeout \(2350 ms\)/,
    },
    {
      name: 'lease neither on nor off',
      doc: doc({ lease: 'maybe' }),
      message: /lease: .*"on"\|"off"/,
    },
    {
      name: 'probe_timeout above probe_interval',
      doc: doc({ timing: { profile: 'fast', probe_timeout: '300ms' } }),
      message: /probe_timeout \(300 ms\) must not exceed probe_interval \(250 ms\)/,
    },
  ];
  for (const c of cases) test(`refused: ${c.name}`, () => refused(c.doc, c.message));

  test('every problem is reported at once, one per issue', () => {
    assert.throws(
      () => validateConfig(doc({ secret: 'x', api_port: 0, rejoin: 'x' }), 'c.yaml'),
      (e: Error) => {
        assert.match(e.message, /secret: /);
        assert.match(e.message, /api_port: /);
        assert.match(e.message, /rejoin: /);
        assert.equal(e.message.split('; ').length, 3);
        return true;
      },
    );
  });
});

describe('loadConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgarbiter-config-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('reads and validates a YAML file', () => {
    const path = join(dir, 'ok.yaml');
    writeFileSync(
      path,
      [
        'node: pg2',
        'secret: correct-horse',
        'nodes:',
        '  - { name: pg1, host: 10.1.0.11 }',
        '  - { name: pg2, host: 10.1.0.12 }',
        'arbiter: { host: 10.1.0.13 }',
        'postgres: { admin_password: a, replication_password: r, synchronous_commit: "on" }',
        'timing: { profile: fast }',
      ].join('\n'),
    );
    chmodSync(path, 0o600); // it holds secrets inline
    const c = loadConfig(path);
    assert.equal(c.node, 'pg2');
    assert.equal(c.arbiter.name, 'arbiter');
    assert.equal(c.postgres.synchronous_commit, 'on');
    assert.deepEqual(c.timing, timingFrom('fast'));
  });

  test('a missing file: a clear error naming it', () => {
    const path = join(dir, 'nope.yaml');
    assert.throws(
      () => loadConfig(path),
      (e: Error) => e instanceof UserError && e.message === `cannot read config ${path}: ENOENT`,
    );
  });

  test('invalid YAML: a one-line error naming the file', () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, 'node: [pg1\nsecret: x\n');
    assert.throws(
      () => loadConfig(path),
      (e: Error) =>
        e instanceof UserError &&
        e.message.startsWith(`${path}: not valid YAML: `) &&
        !e.message.includes('\n'),
    );
  });

  test('a valid YAML with a bad value: the error names the file', () => {
    const path = join(dir, 'invalid.yaml');
    writeFileSync(path, 'node: pg1\n');
    assert.throws(
      () => loadConfig(path),
      (e: Error) => e instanceof UserError && e.message.startsWith(`${path}: invalid config: `),
    );
  });
});

describe('secrets in files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgarbiter-secrets-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const secretFile = (name: string, value: string, mode = 0o600) => {
    const f = join(dir, name);
    writeFileSync(f, value, { mode });
    chmodSync(f, mode);
    return f;
  };
  const base = [
    'node: pg1',
    'nodes:',
    '  - { name: pg1, host: 10.1.0.11 }',
    '  - { name: pg2, host: 10.1.0.12 }',
    'arbiter: { host: 10.1.0.13 }',
  ];
  const configFile = (name: string, lines: string[], mode = 0o644) => {
    const f = join(dir, name);
    writeFileSync(f, [...base, ...lines].join('\n'), { mode });
    chmodSync(f, mode);
    return f;
  };
  const filesOnly = [
    'secret_file: secret',
    'postgres: { admin_password_file: admin, replication_password_file: /dev/null }',
  ];

  test('every secret from its file (relative to the config; one trailing newline dropped); the config may be 0644', () => {
    secretFile('secret', 'a-long-cluster-secret\n');
    secretFile('admin', 'admin pw with spaces ');
    const repl = secretFile('repl', 'replication-pw\r\n');
    const f = configFile('files.yaml', [
      'secret_file: secret',
      `postgres: { admin_password_file: ${join(dir, 'admin')}, replication_password_file: ${repl} }`,
    ]);
    const c = loadConfig(f);
    assert.equal(c.secret, 'a-long-cluster-secret');
    assert.equal(c.postgres.admin_password, 'admin pw with spaces ');
    assert.equal(c.postgres.replication_password, 'replication-pw');
    assert.ok(!('secret_file' in c), 'the resolved config holds values, not file names');
  });

  test('a secret file readable by group or others: refused, one line, with the chmod that fixes it', () => {
    const loose = secretFile('loose', 'a-long-cluster-secret', 0o640);
    const f = configFile(
      'loose.yaml',
      [`secret_file: ${loose}`, 'postgres: { admin_password: a, replication_password: r }'],
      0o600,
    );
    assert.throws(
      () => loadConfig(f),
      (e: Error) =>
        e instanceof UserError &&
        e.message.includes(`run \`chmod 600 ${loose}\``) &&
        e.message.includes('mode 640') &&
        !e.message.includes('a-long-cluster-secret') &&
        !e.message.includes('\n'),
    );
  });

  test('a config holding secrets inline and readable by others: refused with the fix; 0600: accepted', () => {
    const lines = [
      'secret: a-long-cluster-secret',
      'postgres: { admin_password: a, replication_password: r }',
    ];
    const f = configFile('inline.yaml', lines, 0o644);
    assert.throws(
      () => loadConfig(f),
      (e: Error) =>
        e instanceof UserError &&
        /holds secret, postgres\.admin_password, postgres\.replication_password inline/.test(e.message) &&
        e.message.includes(`chmod 600 ${f}`) &&
        !e.message.includes('a-long-cluster-secret'),
    );
    chmodSync(f, 0o600);
    assert.equal(loadConfig(f).secret, 'a-long-cluster-secret');
  });

  test('exactly one of value and file; a missing, empty or short secret file: clear errors', () => {
    secretFile('secret', 'a-long-cluster-secret');
    const both = configFile('both.yaml', ['secret: x-long-enough', ...filesOnly], 0o600);
    assert.throws(() => loadConfig(both), /set either secret or secret_file, not both/);
    const none = configFile('none.yaml', ['postgres: { admin_password: a, replication_password: r }'], 0o600);
    assert.throws(
      () => loadConfig(none),
      /secret_file \(a file holding the secret, mode 0600\) or secret is required/,
    );
    const missing = configFile(
      'missing.yaml',
      ['secret_file: nope', 'postgres: { admin_password: a, replication_password: r }'],
      0o600,
    );
    assert.throws(() => loadConfig(missing), /cannot read secret_file .*nope: ENOENT/);
    secretFile('empty', '\n');
    const empty = configFile(
      'empty.yaml',
      ['secret_file: empty', 'postgres: { admin_password: a, replication_password: r }'],
      0o600,
    );
    assert.throws(() => loadConfig(empty), /secret_file .*empty is empty/);
    secretFile('short', 'short');
    const short = configFile(
      'short.yaml',
      ['secret_file: short', 'postgres: { admin_password: a, replication_password: r }'],
      0o600,
    );
    assert.throws(() => loadConfig(short), /secret must be at least 8 characters/);
  });
});

describe('vip', () => {
  test("an address in the nodes' subnet is accepted", () => {
    const c = validateConfig(doc({ vip: { address: '10.1.0.10/24', interface: 'eth0' } }));
    assert.deepEqual(c.vip, { address: '10.1.0.10/24', interface: 'eth0' });
  });
  test('bad VIP input is refused in one line that says what to do', () => {
    refused(
      doc({ vip: { address: '10.2.0.10/24', interface: 'eth0' } }),
      /outside the database nodes' subnet \(pg1 is 10\.1\.0\.11\): pick an address in it$/,
    );
    refused(doc({ vip: { address: '10.1.0.12/24', interface: 'eth0' } }), /is pg2's own address/);
    refused(doc({ vip: { address: '10.1.0.13/24', interface: 'eth0' } }), /is arbiter's own address/);
    refused(
      doc({ vip: { address: '10.1.0.10', interface: 'eth0' } }),
      /not an IPv4 address with its prefix length/,
    );
    refused(doc({ vip: { address: '10.1.0.255/24', interface: 'eth0' } }), /network or broadcast address/);
    refused(doc({ vip: { address: '10.1.0.10/24' } }), /vip\.interface/);
    refused(doc({ vip: { address: '10.1.0.10/24', interface: 'e 0' } }), /vip\.interface: an interface name/);
  });
});

test('--timing-set: fields over a profile (durations as in a config), checked against the timing rule', () => {
  assert.deepEqual(
    parseTimingSet('failover_timeout=2200, probe_interval=400,fence_action_budget=250', 'default'),
    {
      failover_timeout: 2200,
      probe_interval: 400,
      fence_action_budget: 250,
    },
  );
  assert.deepEqual(parseTimingSet('failover_timeout=2.5s,probe_interval=450ms', 'default'), {
    failover_timeout: 2500,
    probe_interval: 450,
  });
  assert.deepEqual(parseTimingSet('', 'fast'), {});
  // 1500 + 400 + 250 = 2150 ms is not below 2000 ms.
  assert.throws(
    () => parseTimingSet('failover_timeout=2000', 'default'),
    (e: unknown) => {
      return e instanceof UserError && /timing rule violated/.test(e.message) && !e.message.includes('\n');
    },
  );
  for (const bad of [
    'failovr_timeout=2000',
    'failover_timeout=2.5h',
    'failover_timeout=11m',
    'probe_interval=0',
    'probe_interval',
  ])
    assert.throws(() => parseTimingSet(bad, 'default'), UserError, bad);
});
