// src/util/log.ts: the daemons' JSON lines, on stdout and in log_file, secrets redacted.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { redactFields } from '../../src/util/log.js';

const LOG = new URL('../../src/util/log.js', import.meta.url).href;

/** Logs in a child process (the logger writes to fd 1): its stdout and the file's lines. */
function logLines(body: string, env: NodeJS.ProcessEnv = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'pgarbiter-log-'));
  try {
    const file = join(dir, 'sub', 'agent.log');
    const r = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { createLogger } from '${LOG}'; const log = createLogger('agent', { node: 'pg1' }, ${JSON.stringify(file)}); ${body}`,
      ],
      { encoding: 'utf8', env: { ...process.env, PGARBITER_LOG_LEVEL: undefined, ...env }, timeout: 30_000 },
    );
    const file_ = r.status === 0 ? readFileSync(file, 'utf8') : '';
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, file: file_ };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('one JSON line per call, on stdout and appended to the log file, as pino wrote them before', () => {
  const r = logLines(
    `log.warn({ rule: 'r1', n: 2 }, 'promoted "now"'); log.info('stopped'); log.debug('hidden');`,
  );
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.file, r.stdout);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 2, 'debug is below the default level (info)');
  const [a, b] = lines.map((l) => JSON.parse(l));
  assert.deepEqual(Object.keys(a), ['level', 'time', 'node', 'name', 'rule', 'n', 'msg']);
  assert.equal(a.level, 'warn');
  assert.equal(a.msg, 'promoted "now"');
  assert.ok(!Number.isNaN(Date.parse(a.time)) && a.time.endsWith('Z'));
  assert.deepEqual(
    { ...b, time: undefined },
    { level: 'info', time: undefined, node: 'pg1', name: 'agent', msg: 'stopped' },
  );
});

test('PGARBITER_LOG_LEVEL picks the level; a wrong one is a clear error', () => {
  const debug = logLines(`log.debug({ a: 1 }, 'seen');`, { PGARBITER_LOG_LEVEL: 'debug' });
  assert.equal(JSON.parse(debug.stdout).msg, 'seen');
  assert.equal(logLines(`log.warn('no');`, { PGARBITER_LOG_LEVEL: 'error' }).stdout, '');
  const bad = logLines(`log.info('x');`, { PGARBITER_LOG_LEVEL: 'loud' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /PGARBITER_LOG_LEVEL=loud: use one of .*info/);
});

test('passwords, secrets and conninfo are redacted, one level down too, without touching the caller object', () => {
  const cfg = { host: 'h', password: 'p1', nested: { secret: 's' } };
  const out = redactFields({
    password: 'x',
    secret: 'y',
    conninfo: 'host=h password=z',
    cfg,
    list: [1],
    n: null,
  });
  assert.deepEqual(out, {
    password: '[redacted]',
    secret: '[redacted]',
    conninfo: '[redacted]',
    cfg: { host: 'h', password: '[redacted]', nested: { secret: 's' } },
    list: [1],
    n: null,
  });
  assert.equal(cfg.password, 'p1');
  const line = logLines(`log.info({ cfg: { password: 'hunter2' } }, 'config');`).stdout;
  assert.doesNotMatch(line, /hunter2/);
});
