import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UserError } from '../../src/util/errors.js';
import { targetFromConnOptions } from '../../src/workload/dsn.js';
import { startWriter } from '../../src/workload/writer.js';

// Options are checked before any connection is attempted (port 1 is never contacted).
const target = 'host=127.0.0.1 port=1 user=nobody';

test('bad writer options are one-line user errors, raised before connecting', async () => {
  const bad = [
    { sessions: 0 },
    { sessions: -1 },
    { sessions: 1.5 },
    { sessions: 257 },
    { durationMs: 0 },
    { durationMs: -1000 },
    { durationMs: Number.NaN },
    { ratePerSession: -1 },
    { commitTimeoutMs: 0 },
  ];
  for (const o of bad) {
    await assert.rejects(
      startWriter({ target, ...o }),
      (e: unknown) => e instanceof UserError && !e.message.includes('\n') && !/ECONNREFUSED/.test(e.message),
      JSON.stringify(o),
    );
  }
});

test('a multi-host target from per-node connection options', () => {
  const t = targetFromConnOptions([
    {
      host: '10.0.0.1',
      port: 5432,
      user: 'app',
      password: 'pw',
      database: 'postgres',
      connectTimeoutMs: 1500,
    },
    { host: '10.0.0.2', port: 5432, user: 'app', password: 'pw' },
  ]);
  assert.deepEqual(
    t.endpoints.map((e) => e.host),
    ['10.0.0.1', '10.0.0.2'],
  );
  assert.equal(t.targetSessionAttrs, 'read-write');
  assert.equal(t.connectTimeoutMs, 1500);
  assert.throws(() => targetFromConnOptions([]), UserError);
});
