// TLS everywhere on a real lab with mutual TLS on the APIs (client_certs: required): curl without
// the CA fails, without a client certificate is refused, with both succeeds; plain HTTP gets a
// clear 400; `status` from the machine keeps TLS end to end through the lab's API sockets;
// PostgreSQL refuses plain connections and encrypts replication; and a capture of the switch's
// traffic during a failover and rejoin holds no secret in clear text.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ApiClient } from '../../src/api/client.js';
import type { ClusterView } from '../../src/cluster/view.js';
import { apiSocketPath, labClusterMembers } from '../../src/lab/api-access.js';
import type { Lab, MemberHost } from '../../src/lab/index.js';
import {
  adminConn,
  BRIDGE,
  CLI_MAIN,
  hostArgv,
  LAB_API_PORT,
  labApiCurl,
  labCaFile,
  psqlConninfo,
} from '../../src/lab/index.js';
import { clusterView, healthy, waitFor } from '../../src/scenario/lab-run.js';
import { apiUrl, tlsMaterial } from '../../src/tls/material.js';
import { run, sleep } from '../../src/util/exec.js';
import { callJson } from '../../src/util/http.js';
import { labCli as labCliIn, labIdentity, needsRoot, useLab } from './fixture.js';

const LAB = labIdentity({ prefix: 'pgtls', subnet: '10.213.150.0/24' });
let lab: Lab;

const inClient = (argv: string[]) =>
  run(hostArgv(lab, 'client', argv), { timeoutMs: 15_000, allowFailure: true });

async function adminSql(host: 'pg1' | 'pg2', sql: string, conninfo = psqlConninfo(adminConn(lab, host))) {
  return run(hostArgv(lab, 'client', ['psql', conninfo, '-XAtc', sql]), {
    timeoutMs: 15_000,
    allowFailure: true,
    env: { ...process.env, PGPASSWORD: lab.secrets.adminPassword },
  });
}

describe('TLS on the APIs and in PostgreSQL', { skip: needsRoot, timeout: 600_000 }, () => {
  useLab(LAB, {
    sync: 'remote_apply',
    timing: 'default',
    clientCerts: 'required',
    ready: (l) => {
      lab = l;
    },
  });

  test('API: curl without the CA fails, without a client certificate is refused, with both answers', async () => {
    const url = apiUrl(lab.hosts.arbiter.address, LAB_API_PORT, '/state');
    const noCa = await inClient(['curl', '-sS', '-m', '3', url]);
    assert.notEqual(noCa.code, 0);
    assert.match(noCa.stderr, /certificate/i, 'curl names the unverifiable certificate');
    const noCert = await inClient(['curl', '-sS', '-m', '3', '--cacert', labCaFile(lab), url]);
    assert.notEqual(noCert.code, 0, 'no client certificate: refused');
    assert.doesNotMatch(noCert.stdout, /"term"/);
    const ok = await inClient(labApiCurl(lab, 'client', 'arbiter', '/state', { timeoutS: 3 }));
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(typeof (JSON.parse(ok.stdout) as { record: { term: number } }).record.term, 'number');
    // A certificate from another CA is refused as well.
    const other = await inClient([
      'curl',
      '-sS',
      '-m',
      '3',
      '--cacert',
      labCaFile(lab),
      '--cert',
      join(lab.dir, 'tls', 'ca.crt'),
      '--key',
      join(lab.dir, 'tls', 'ca.key'),
      url,
    ]);
    assert.notEqual(other.code, 0, 'the CA itself is no client certificate');
  });

  test("status from the machine: TLS end to end through the lab's sockets, each member verified by its address", async () => {
    // Mutual TLS through HAProxy's forwarders: the table, every member reachable.
    const st = await run([process.execPath, CLI_MAIN, 'status', '--json', '--prefix', lab.prefix], {
      timeoutMs: 60_000,
    });
    const view = JSON.parse(st.stdout) as ClusterView;
    assert.ok(view.arbiter.reachable && view.nodes.every((n) => n.reachable), st.stdout);
    // The socket only carries bytes: a member reached through another's socket presents the other's
    // certificate, which does not name the address called, and is refused.
    const members = labClusterMembers(lab);
    const call = (socket: MemberHost) =>
      callJson(apiUrl(lab.hosts.arbiter.address, LAB_API_PORT, '/state'), {
        timeoutMs: 5000,
        tls: tlsMaterial(members.tls),
        socketPath: apiSocketPath(lab, socket),
      });
    assert.equal((await call('arbiter')).status, 200);
    await assert.rejects(call('pg1'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    const wrong = new ApiClient(members, () => apiSocketPath(lab, 'pg1'));
    assert.equal(await wrong.arbiterState(5000), null, 'a member behind the wrong socket is not believed');
  });

  test('API: plain HTTP gets a clear 400 naming https, at once', async () => {
    const t0 = Date.now();
    const r = await inClient([
      'curl',
      '-sS',
      '-m',
      '3',
      '-w',
      '\n%{http_code}',
      `http://${lab.hosts.pg1.address}:${LAB_API_PORT}/state`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /HTTPS only: use https:\/\//);
    assert.match(r.stdout, /\n400$/);
    assert.ok(Date.now() - t0 < 2500, 'refused at once, not after a timeout');
  });

  test('PostgreSQL: a plain connection is refused; admin and replication run over TLS', async () => {
    const plain = await adminSql(
      'pg1',
      'SELECT 1',
      `${psqlConninfo({ ...adminConn(lab, 'pg1'), ssl: undefined })} sslmode=disable`,
    );
    assert.notEqual(plain.code, 0);
    assert.match(plain.stderr, /no pg_hba\.conf entry .*no encryption/);
    const me = await adminSql('pg1', 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    assert.equal(me.stdout.trim(), 't', me.stderr);
    // The walsender of pg2's stream, over TLS (waited for: under load the stream may be reconnecting).
    const repl = await waitFor('pg2 streaming', 30_000, async () => {
      const r = await adminSql(
        'pg1',
        "SELECT r.application_name || ' ' || s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)",
      );
      return r.stdout.trim() ? r : undefined;
    });
    assert.equal(repl.stdout.trim(), 'pg2 true', `pg2 replicates over TLS: ${repl.stderr}`);
  });

  test('a capture of the switch during a failover and rejoin holds no secret in clear text', async () => {
    const pcap = join(lab.dir, 'failover.pcap');
    const tcpdump = spawn(
      'ip',
      ['netns', 'exec', lab.switchNs, 'tcpdump', '-i', BRIDGE, '-s', '0', '-U', '-w', pcap],
      {
        stdio: 'ignore',
      },
    );
    try {
      await sleep(1500);
      const h0 = await waitFor('healthy before', 60_000, async () =>
        healthy(await clusterView(lab).catch(() => undefined as never)),
      );
      await labCliIn(lab.prefix, 'isolate', h0.primary);
      await waitFor('the standby promoted (its grant asked for with the secret)', 40_000, async () => {
        const st = (await clusterView(lab)).nodes.find((n) => n.name === h0.standby)?.state;
        return st?.role === 'primary' && st.postgres.inRecovery === false ? true : undefined;
      });
      await labCliIn(lab.prefix, 'heal', h0.primary);
      await waitFor('the old primary rewound and streaming again (pg_rewind over TLS)', 120_000, async () => {
        const h = healthy(await clusterView(lab));
        return h && h.primary === h0.standby ? h : undefined;
      });
      await sleep(1000);
    } finally {
      tcpdump.kill('SIGINT');
      await new Promise((r) => tcpdump.once('exit', r));
    }
    const bytes = readFileSync(pcap);
    assert.ok(
      statSync(pcap).size > 50_000,
      `the capture holds the failover's traffic (${statSync(pcap).size} bytes)`,
    );
    const ports = await run(['tcpdump', '-nr', pcap, 'tcp port 8008 or tcp port 5432'], {
      timeoutMs: 30_000,
      allowFailure: true,
    });
    assert.ok(ports.stdout.split('\n').length > 100, 'API and PostgreSQL traffic captured');
    const s = lab.secrets;
    for (const [what, secret] of Object.entries({
      'cluster secret': s.secret,
      'admin password': s.adminPassword,
      'replication password': s.replicationPassword,
      'app password': s.appPassword,
    }))
      assert.equal(bytes.indexOf(Buffer.from(secret)), -1, `the ${what} crosses the wire in clear text`);
    assert.equal(bytes.indexOf(Buffer.from('Bearer ')), -1, 'no HTTP header in clear text');
    assert.equal(bytes.indexOf(Buffer.from('"term"')), -1, 'no API body in clear text');
  });
});
