// The writer and the checker against a real, throwaway PostgreSQL 15 on 127.0.0.1:55432 (or the port testPort gives) with
// its own data dir and socket dir. Needs root (initdb runs as the postgres OS user). It stops
// only the server of its own data dir, and cleans up what a previous crashed run left.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { PG_BIN_DIR } from '../../src/lab/pgconf.js';
import { closeClient, makeClient } from '../../src/postgres/client.js';
import { UserError } from '../../src/util/errors.js';
import { asUser, run, sleep } from '../../src/util/exec.js';
import { checkLedger } from '../../src/workload/checker.js';
import { connectTarget, parseDsn } from '../../src/workload/dsn.js';
import { ledgerTxs, parseLedger, readLedger } from '../../src/workload/ledger.js';
import { startWriter, type WriterEvent } from '../../src/workload/writer.js';
import { isRoot, labIdentity, testPort } from './fixture.js';

// Named after the lab prefix (PGARBITER_LAB_PREFIX when set) and on a port of its own, so two
// engineers running this file at once neither share nor stop each other's server.
const BASE = `/tmp/pgw-test-${labIdentity({ prefix: 'pgw', subnet: '10.213.110.0/24' }).prefix}`;
const DATA = join(BASE, 'data');
const SOCK = join(BASE, 'run');
const LEDGERS = join(BASE, 'ledgers');
const PORT = testPort(55432);
const BIN = PG_BIN_DIR;
const DSN = `host=127.0.0.1 port=${PORT} user=postgres dbname=postgres`;

const canRun = isRoot && existsSync(join(BIN, 'initdb'));

async function pgCtl(args: string[], allowFailure = false) {
  return run(asUser('postgres', [join(BIN, 'pg_ctl'), '-D', DATA, ...args]), {
    timeoutMs: 60_000,
    allowFailure,
  });
}

/** Stops the server of our data dir if one is running (a previous crashed run), then deletes it. */
async function cleanup() {
  if (existsSync(join(DATA, 'postmaster.pid')))
    await pgCtl(['stop', '-m', 'immediate', '-w', '-t', '20'], true);
  rmSync(BASE, { recursive: true, force: true });
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = makeClient({
    host: '127.0.0.1',
    port: PORT,
    user: 'postgres',
    queryTimeoutMs: 10_000,
    options: { synchronous_commit: 'local' },
  });
  try {
    await c.connect();
    return await fn(c);
  } finally {
    await closeClient(c);
  }
}

async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs = 10_000) {
  const end = Date.now() + timeoutMs;
  for (let i = 0; Date.now() < end && i < 1000; i++) {
    if (await fn()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const syncRepWaiters = () =>
  admin(async (c) => {
    const r = await c.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND application_name LIKE 'pgarbiter-writer-%'",
    );
    return r.rows.map((x) => x.pid);
  });

async function setSyncStandbyNames(v: string) {
  await admin(async (c) => {
    await c.query(`ALTER SYSTEM SET synchronous_standby_names = '${v}'`);
    await c.query('SELECT pg_reload_conf()');
  });
  await sleep(300);
}

/** The compiled CLI next to this compiled test (or the source via tsx when run from source). */
function spawnCli(args: string[]) {
  const js = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
  const ts = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
  const argv = existsSync(js) ? [js] : ['--import', 'tsx', ts];
  const child = spawn(process.execPath, [...argv, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const done = new Promise<{ code: number; signal: string | null; out: string; err: string }>(
    (resolve, reject) => {
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => {
        out += d;
      });
      child.stderr.on('data', (d) => {
        err += d;
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('error', reject);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? 1, signal, out, err });
      });
    },
  );
  return { child, done };
}

const cli = (args: string[]) => spawnCli(args).done;

const ledgerHasAcks = (path: string) => async () =>
  ledgerTxs(path).filter((tx) => tx.outcome === 'ack').length > 20;

let n = 0;
const ledgerPath = (name: string) => join(LEDGERS, `${name}-${++n}.jsonl`);

describe('writer and check against PostgreSQL 15', {
  skip: canRun ? false : 'needs root and PostgreSQL 15',
}, () => {
  before(async () => {
    await cleanup();
    mkdirSync(SOCK, { recursive: true });
    mkdirSync(LEDGERS, { recursive: true });
    await run(['chown', '-R', 'postgres', BASE]);
    await run(asUser('postgres', [join(BIN, 'initdb'), '-D', DATA, '-A', 'trust', '-U', 'postgres']), {
      timeoutMs: 120_000,
    });
    await pgCtl([
      'start',
      '-w',
      '-t',
      '30',
      '-l',
      join(BASE, 'postgresql.log'),
      '-o',
      `-c unix_socket_directories=${SOCK} -c listen_addresses=127.0.0.1 -c port=${PORT} -c cluster_name=pgwtest`,
    ]);
  });

  after(async () => {
    await cleanup();
  });

  test('acknowledged writes are all found; deleting one is reported lost with exit status 3', async () => {
    const path = ledgerPath('basic');
    const h = await startWriter({ target: DSN, sessions: 3, durationMs: 1500, ledgerPath: path });
    const s = await h.done;
    assert.equal(s.stoppedBy, 'duration');
    assert.ok(s.acknowledged > 50, `only ${s.acknowledged} acks`);
    assert.equal(s.unknown, 0);
    assert.equal(s.failed, 0);
    assert.ok(s.acksPerSecond.length >= 1 && s.acksPerSecond.reduce((a, b) => a + b, 0) === s.acknowledged);

    const ledger = await readLedger(path);
    assert.equal(ledger.txs.filter((t) => t.outcome === 'ack').length, s.acknowledged);
    assert.ok(ledger.end);
    assert.match(ledger.header.systemIdentifier ?? '', /^[0-9]+$/);
    assert.ok(ledger.txs.every((t) => t.server === `127.0.0.1:${PORT}`));
    // One sequence per session, no gaps.
    for (let sess = 0; sess < 3; sess++) {
      const seqs = ledger.txs.filter((t) => t.session === sess).map((t) => t.seq);
      assert.deepEqual(
        seqs,
        seqs.map((_, i) => i + 1),
      );
    }

    const ok = await checkLedger(path);
    assert.equal(ok.lost.count, 0);
    assert.equal(ok.totals.acknowledged, s.acknowledged);
    assert.equal(ok.exitCode, 0);
    assert.equal(ok.unrecorded.count, 0);

    const victim = ledger.txs.find((t) => t.outcome === 'ack')?.id ?? '';
    await admin(async (c) => {
      await c.query('DELETE FROM orders WHERE id = $1', [victim]);
      await c.query('DELETE FROM customers WHERE id = $1', [victim]);
    });
    const lost = await checkLedger(path, { expectNoLoss: true });
    assert.equal(lost.lost.count, 1);
    assert.deepEqual(lost.lost.ids, [victim]);
    assert.equal(lost.exitCode, 3);
    // synchronous_commit=on without a sync standby promises nothing: reported, not a failure.
    assert.equal((await checkLedger(path)).exitCode, 0);

    const r = await cli(['check', '--ledger', path, '--expect-no-loss']);
    assert.equal(r.code, 3, r.err);
    assert.match(r.out, /lost {10}1/);
    const j = await cli(['check', '--ledger', path, '--json', '--dsn', DSN]);
    assert.equal(j.code, 0, j.err);
    assert.equal(JSON.parse(j.out).lost.count, 1);
  });

  test('a commit cut while waiting for a sync standby is unknown, and resolves as committed', async () => {
    const path = ledgerPath('unknown');
    await setSyncStandbyNames('nobody');
    try {
      const h = await startWriter({
        target: DSN,
        sessions: 2,
        ledgerPath: path,
        commitTimeoutMs: 20_000,
        backoffMinMs: 50,
        backoffMaxMs: 200,
      });
      try {
        // Both sessions block in COMMIT (no standby will ever confirm).
        await waitFor('2 commits waiting for sync rep', async () => (await syncRepWaiters()).length >= 2);
        assert.equal(h.stats().acknowledged, 0);
        // Kill the connections mid-COMMIT: the client cannot know; the server committed locally.
        await admin((c) =>
          c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"),
        );
        await waitFor('unknown outcomes', async () => h.stats().unknown >= 2);
        // The sessions reconnect by themselves and block again; a cancel now makes COMMIT return
        // OK with a warning: acknowledged, but only committed locally.
        await waitFor('sessions blocked again', async () => (await syncRepWaiters()).length >= 2);
        await admin((c) =>
          c.query("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"),
        );
        await waitFor('acks with a warning', async () => h.stats().acknowledgedWithWarning >= 2);
        await setSyncStandbyNames('');
        // Whatever still waits was queued before the reload; release it.
        await admin((c) =>
          c.query("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"),
        );
        const before = h.stats().acknowledged;
        await waitFor('plain acks again', async () => h.stats().acknowledged > before + 20);
      } finally {
        await h.stop();
      }
      const ledger = await readLedger(path);
      const unknown = ledger.txs.filter((t) => t.outcome === 'unknown');
      assert.ok(unknown.length >= 2);
      assert.ok(
        unknown.every((t) => /terminat/i.test(t.error ?? '')),
        JSON.stringify(unknown),
      );
      const warned = ledger.txs.filter((t) => t.outcome === 'ack' && t.warning);
      assert.ok(warned.every((t) => /synchronous replication/.test(t.warning ?? '')));
      assert.ok(ledger.events.some((e) => e.event === 'disconnected'));

      const r = await checkLedger(path);
      assert.equal(r.synchronousStandbyNames, 'nobody');
      assert.equal(r.promisesNoLoss, true);
      assert.equal(r.unknown.count, unknown.length);
      // Terminated during the sync wait = committed locally: present.
      assert.equal(r.unknown.committed, unknown.length);
      assert.equal(r.lost.count, 0);
      assert.equal(r.exitCode, 0);
    } finally {
      await setSyncStandbyNames('');
    }
  });

  test('a COMMIT past its deadline is unknown too', async () => {
    const path = ledgerPath('timeout');
    await setSyncStandbyNames('nobody');
    try {
      const h = await startWriter({ target: DSN, sessions: 1, ledgerPath: path, commitTimeoutMs: 500 });
      await waitFor('a timed-out commit', async () => h.stats().unknown >= 1);
      const s = await h.stop();
      assert.ok(s.unknown >= 1);
      assert.equal(s.acknowledged, 0);
    } finally {
      await setSyncStandbyNames('');
      await admin((c) =>
        c.query("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"),
      );
    }
    const r = await checkLedger(path);
    assert.ok(r.unknown.count >= 1);
    assert.equal(r.unknown.torn, 0);
    const l = await readLedger(path);
    assert.ok(l.txs.some((t) => t.outcome === 'unknown' && /Query read timeout/.test(t.error ?? '')));
  });

  test('bad input: another cluster, a cut ledger, unreachable and silent servers, bad flags', async () => {
    const path = ledgerPath('bad');
    const s = await (await startWriter({ target: DSN, sessions: 1, durationMs: 300, ledgerPath: path })).done;
    assert.ok(s.acknowledged > 0);
    const text = readFileSync(path, 'utf8');

    // Another cluster: the system identifier in the header differs.
    const other = ledgerPath('other');
    const [_head, ...rest] = text.split('\n');
    const h = parseLedger(text).header;
    writeFileSync(other, [JSON.stringify({ ...h, systemIdentifier: '1234567890' }), ...rest].join('\n'));
    await assert.rejects(
      checkLedger(other),
      (e: unknown) => e instanceof UserError && /cluster 1234567890/.test(e.message),
    );

    // Cut last line: tolerated, with a warning.
    const cut = ledgerPath('cut');
    writeFileSync(cut, text.slice(0, text.length - 20));
    const r = await checkLedger(cut);
    assert.ok(r.warnings.some((w) => /last line is incomplete/.test(w)));
    assert.equal(r.lost.count, 0);

    // Corrupt middle line: an error with the line number, from the CLI as one line, exit 1.
    const bad = ledgerPath('corrupt');
    const lines = text.split('\n');
    lines[2] = '{"type":"tx", oops';
    writeFileSync(bad, lines.join('\n'));
    const c = await cli(['check', '--ledger', bad]);
    assert.equal(c.code, 1);
    assert.match(c.err, /:3: not valid JSON/);
    assert.equal(c.err.trim().split('\n').length, 1);

    // Unreachable: refused at once.
    const t0 = Date.now();
    await assert.rejects(
      startWriter({ target: 'host=127.0.0.1 port=1 user=postgres', ledgerPath: ledgerPath('x') }),
      (e: unknown) => e instanceof UserError && /no read-write server .*127\.0\.0\.1:1/.test(e.message),
    );
    assert.ok(Date.now() - t0 < 3000);
    // With --setup-wait it retries, says so, and gives up with the same error after the wait.
    const retries: WriterEvent[] = [];
    const t1 = Date.now();
    await assert.rejects(
      startWriter({
        target: 'host=127.0.0.1 port=1 user=postgres',
        ledgerPath: ledgerPath('x'),
        setupWaitMs: 1600,
        onEvent: (e) => retries.push(e),
      }),
      (e: unknown) => e instanceof UserError && /no read-write server .*127\.0\.0\.1:1/.test(e.message),
    );
    assert.ok(Date.now() - t1 >= 1000, 'it waited');
    assert.ok(retries.length >= 2 && retries.every((e) => /^setup, retrying: /.test(e.detail ?? '')));

    // Silent: a listener that never answers; bounded by the connect timeout.
    const silent = createServer(() => {});
    await new Promise<void>((res) => silent.listen(0, '127.0.0.1', res));
    const port = (silent.address() as { port: number }).port;
    try {
      const t1 = Date.now();
      await assert.rejects(
        checkLedger(path, { target: `host=127.0.0.1 port=${port} user=postgres connect_timeout=1` }),
        (e: unknown) => e instanceof UserError && /timeout/i.test(e.message),
      );
      assert.ok(Date.now() - t1 < 4000, `took ${Date.now() - t1} ms`);
    } finally {
      silent.close();
    }

    // A multi-host list skips a dead host and lands on the writable one.
    const mh = await startWriter({
      target: `host=127.0.0.1,127.0.0.1 port=1,${PORT} user=postgres`,
      sessions: 2,
      durationMs: 300,
      ledgerPath: ledgerPath('multi'),
    });
    const ms = await mh.done;
    assert.ok(ms.acknowledged > 0);
    assert.deepEqual(Object.keys(ms.acksByServer), [`127.0.0.1:${PORT}`]);

    // CLI flags: one-line user errors, exit status 1, nothing written.
    for (const args of [
      ['writer', '--dsn', DSN, '--duration', '0'],
      ['writer', '--dsn', DSN, '--duration', '-3'],
      ['writer', '--dsn', DSN, '--sessions', '0'],
      ['writer', '--dsn', DSN, '--sessions', '1.5'],
      ['writer', '--dsn', 'host=127.0.0.1 port=1', '--duration', '1'],
      ['writer', '--dsn', DSN, '--password-env', 'PGW_TEST_NO_SUCH_VAR'],
      ['check', '--ledger', join(LEDGERS, 'missing.jsonl')],
      ['check', '--ledger', path, '--allow-loss', '--expect-no-loss'],
    ]) {
      const res = await cli(args);
      assert.equal(res.code, 1, `${args.join(' ')}: ${res.err}`);
      assert.match(res.err, /^error: /, args.join(' '));
      assert.equal(res.err.trim().split('\n').length, 1, `${args.join(' ')}: ${res.err}`);
    }

    // The CLI writer end to end, with a JSON summary.
    const cliLedger = ledgerPath('cli');
    const w = await cli([
      'writer',
      '--dsn',
      DSN,
      '--duration',
      '1',
      '--sessions',
      '2',
      '--ledger',
      cliLedger,
      '--json',
    ]);
    assert.equal(w.code, 0, w.err);
    const sum = JSON.parse(w.out);
    assert.ok(sum.acknowledged > 0);
    assert.equal(sum.ledgerPath, cliLedger);
  });

  test('the CLI writer stops cleanly on SIGINT; after kill -9 its ledger still checks', async () => {
    const p1 = ledgerPath('sigint');
    const w1 = spawnCli(['writer', '--dsn', DSN, '--ledger', p1, '--progress']);
    await waitFor('acks in the ledger', ledgerHasAcks(p1));
    await sleep(1100); // at least one progress line
    w1.child.kill('SIGINT');
    const r1 = await w1.done;
    assert.equal(r1.code, 0, r1.err);
    assert.match(r1.out, /acknowledged \d+/);
    assert.match(r1.err, /acked \d+ \(\d+\/s\)/);
    assert.match(r1.err, /SIGINT: stopping/);
    const l1 = await readLedger(p1);
    assert.equal(l1.end?.summary.stoppedBy, 'stop');
    assert.equal((await checkLedger(p1)).exitCode, 0);

    const p2 = ledgerPath('kill9');
    const w2 = spawnCli(['writer', '--dsn', DSN, '--ledger', p2, '--sessions', '4']);
    await waitFor('acks in the ledger', ledgerHasAcks(p2));
    w2.child.kill('SIGKILL');
    const r2 = await w2.done;
    assert.equal(r2.signal, 'SIGKILL');
    await sleep(300); // let the server finish the killed sessions' last transactions
    const r = await checkLedger(p2);
    assert.equal(r.lost.count, 0);
    assert.equal(r.exitCode, 0);
    assert.ok(r.warnings.some((w) => /no end line/.test(w)));
    // At most the transaction in flight per session committed without its ledger line.
    assert.ok(r.unrecorded.count <= 4, `unrecorded ${r.unrecorded.count}`);
  });

  test("sslmode like libpq's: prefer falls back to plain, allow and prefer reach a TLS-only server, disable is refused", async () => {
    // Which session the DSN gets: encrypted or not (pg_stat_ssl), or the one-line error.
    const session = async (sslmode: string) => {
      try {
        const { client } = await connectTarget(parseDsn(`${DSN} sslmode=${sslmode}`));
        try {
          const r = await client.query<{ ssl: boolean }>(
            'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
          );
          return r.rows[0]?.ssl ? 'tls' : 'plain';
        } finally {
          await closeClient(client);
        }
      } catch (e) {
        return `error: ${(e as Error).message}`;
      }
    };
    // The server has no TLS yet: prefer (libpq's default) and allow connect in plain.
    assert.equal(await session('prefer'), 'plain');
    assert.equal(await session('allow'), 'plain');
    assert.match(await session('require'), /^error: .*does not support SSL/);

    // TLS on, and pg_hba.conf takes TLS sessions only.
    const hba = join(DATA, 'pg_hba.conf');
    const hbaBefore = readFileSync(hba, 'utf8');
    await run([
      'openssl',
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      join(DATA, 'server.key'),
      '-out',
      join(DATA, 'server.crt'),
      '-subj',
      '/CN=127.0.0.1',
      '-days',
      '1',
    ]);
    await run(['chown', 'postgres', join(DATA, 'server.key'), join(DATA, 'server.crt')]);
    await run(['chmod', '600', join(DATA, 'server.key')]);
    await admin((c) => c.query('ALTER SYSTEM SET ssl = on'));
    writeFileSync(
      hba,
      'local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n',
    );
    await admin((c) => c.query('SELECT pg_reload_conf()'));
    try {
      await waitFor('TLS sessions', async () => (await session('require')) === 'tls');
      assert.equal(await session('prefer'), 'tls');
      assert.equal(await session('allow'), 'tls');
      assert.match(await session('disable'), /^error: .*no encryption/);
      // The writer itself, with no sslmode at all, as libpq would.
      const p = ledgerPath('prefer-tls');
      const w = await cli(['writer', '--dsn', DSN, '--ledger', p, '--duration', '1', '--json']);
      assert.equal(w.code, 0, w.err);
      assert.ok(JSON.parse(w.out).acknowledged > 0);
    } finally {
      // Admin sessions of the tests above are plain: put the server back as it was.
      writeFileSync(hba, hbaBefore);
      await run(
        [
          'psql',
          '-h',
          SOCK,
          '-p',
          String(PORT),
          '-U',
          'postgres',
          '-c',
          'ALTER SYSTEM SET ssl = off',
          '-c',
          'SELECT pg_reload_conf()',
        ],
        {
          allowFailure: true,
        },
      );
    }
  });
});
