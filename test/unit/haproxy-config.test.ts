// The rendered haproxy.cfg (pure), checked by structure and by Debian's haproxy itself (-c).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { haproxyDsn } from '../../src/lab/haproxy.js';
import { parseShowStat, renderHaproxyConfig, validateHaproxyConfig } from '../../src/routing/haproxy.js';
import { createCa, issueMemberCert } from '../../src/tls/certs.js';
import { UserError } from '../../src/util/errors.js';
import { parseDsn } from '../../src/workload/dsn.js';

const servers = [
  { name: 'pg1', address: '10.213.0.11' },
  { name: 'pg2', address: '10.213.0.12' },
];
const checkCaFile = '/etc/pgarbiter/tls/ca.crt';
const TLS_CHECK = `check-ssl verify required ca-file ${checkCaFile}`;

/** The lines of one `listen` section (up to the next blank line). */
function section(cfg: string, name: string): string[] {
  const lines = cfg.split('\n');
  const i = lines.indexOf(`listen ${name}`);
  assert.ok(i >= 0, `listen ${name} present`);
  const end = lines.indexOf('', i);
  return lines.slice(i + 1, end < 0 ? undefined : end).map((l) => l.trim());
}

test('Patroni-style read-write and read-only listeners', () => {
  const cfg = renderHaproxyConfig({ servers, checkCaFile });
  const rw = section(cfg, 'primary');
  assert.ok(rw.includes('bind *:5000'));
  assert.ok(
    rw.includes('option httpchk GET /primary?hold'),
    'the checks ask the agents to hold their answers',
  );
  assert.ok(rw.includes('http-check expect status 200'));
  // A down server (the promoted standby) is checked every 200 ms, a changing one every 100 ms; a
  // refused connection (a fenced old primary) marks its server down at once, and the retry goes
  // to another server instead of waiting on the refusing one.
  assert.ok(
    rw.includes(
      'default-server inter 500ms fastinter 100ms downinter 200ms fall 3 rise 1 on-marked-down shutdown-sessions observe layer4 error-limit 1 on-error mark-down',
    ),
  );
  assert.ok(rw.includes('option redispatch 1'));
  assert.ok(rw.includes(`server pg1 10.213.0.11:5432 maxconn 100 check port 8008 ${TLS_CHECK}`));
  assert.ok(rw.includes(`server pg2 10.213.0.12:5432 maxconn 100 check port 8008 ${TLS_CHECK}`));
  const ro = section(cfg, 'replicas');
  assert.ok(ro.includes('bind *:5001'));
  assert.ok(ro.includes('option httpchk GET /replica?hold'));
  // Readers need not follow a change within 200 ms: the read-only checks run every second.
  assert.ok(
    ro.includes(
      'default-server inter 2s fastinter 100ms downinter 2s fall 3 rise 1 on-marked-down shutdown-sessions observe layer4 error-limit 1 on-error mark-down',
    ),
  );
  assert.ok(ro.includes(`server pg2 10.213.0.12:5432 maxconn 100 check port 8008 ${TLS_CHECK}`));
  // TCP mode, a short connect timeout, client/server timeouts long enough for a writer.
  assert.match(cfg, /^ {4}mode tcp$/m);
  assert.match(cfg, /^ {4}timeout connect 2s$/m);
  assert.match(cfg, /^ {4}timeout client 30m$/m);
  assert.match(cfg, /^ {4}timeout server 30m$/m);
  // No syslog: the log goes to stdout (the daemon's log file).
  assert.match(cfg, /log stdout/);
  assert.doesNotMatch(cfg, /\/dev\/log|daemon$/m);
  // Stats page by default, none on request; a stats socket when asked.
  assert.match(cfg, /listen stats\n {4}mode http\n {4}bind \*:7000/);
  assert.doesNotMatch(renderHaproxyConfig({ servers, checkCaFile, statsPort: null }), /listen stats/);
  assert.match(
    renderHaproxyConfig({ servers, checkCaFile, statsSocket: '/tmp/lab/haproxy.sock' }),
    /stats socket \/tmp\/lab\/haproxy\.sock mode 600 level admin/,
  );
});

test('a unix socket forwarder passes bytes through to one address (TLS end to end), unchecked', () => {
  const unixForwards = [
    { name: 'api-arbiter', socket: '/tmp/lab/api/arbiter.sock', address: '10.213.0.13', port: 8008 },
  ];
  const cfg = renderHaproxyConfig({ servers, checkCaFile, unixForwards });
  const fwd = section(cfg, 'api-arbiter');
  assert.ok(fwd.includes('bind /tmp/lab/api/arbiter.sock mode 600'), 'only its owner (root) may connect');
  assert.ok(fwd.includes('server api-arbiter 10.213.0.13:8008'));
  // Bytes as they are: the defaults' tcp mode, no TLS of HAProxy's own, no health check.
  assert.ok(!fwd.some((l) => /^mode http|ssl|check/.test(l)), fwd.join(' | '));
  assert.doesNotMatch(renderHaproxyConfig({ servers, checkCaFile }), /api-arbiter/);
});

test('ports, timing and bind are configurable; the output is deterministic', () => {
  const o = {
    servers,
    checkCaFile,
    pgPort: 6432,
    apiPort: 9008,
    rwPort: 15000,
    roPort: 15001,
    bind: '127.0.0.1',
    checkInterval: '1s',
    downInterval: '300ms',
    fastInterval: '50ms',
    replicaCheckInterval: '2s',
    fall: 3,
    rise: 2,
  };
  const cfg = renderHaproxyConfig(o);
  assert.equal(cfg, renderHaproxyConfig(o));
  assert.ok(section(cfg, 'primary').includes('bind 127.0.0.1:15000'));
  assert.ok(section(cfg, 'replicas').includes('bind 127.0.0.1:15001'));
  assert.ok(
    section(cfg, 'primary').includes(`server pg1 10.213.0.11:6432 maxconn 100 check port 9008 ${TLS_CHECK}`),
  );
  assert.ok(
    section(cfg, 'primary').includes(
      'default-server inter 1s fastinter 50ms downinter 300ms fall 3 rise 2 on-marked-down shutdown-sessions observe layer4 error-limit 1 on-error mark-down',
    ),
  );
  assert.ok(
    section(cfg, 'replicas').includes(
      'default-server inter 2s fastinter 50ms downinter 2s fall 3 rise 2 on-marked-down shutdown-sessions observe layer4 error-limit 1 on-error mark-down',
    ),
  );
});

test('bad input is refused with a clear error', () => {
  const bad: [string, Parameters<typeof renderHaproxyConfig>[0]][] = [
    ['no servers', { servers: [], checkCaFile }],
    ['bad server name', { servers: [{ name: 'pg 1', address: '10.0.0.1' }], checkCaFile }],
    ['listed twice', { servers: [servers[0]!, servers[0]!], checkCaFile }],
    ['bad server address', { servers: [{ name: 'x', address: '10.0.0.1\n  bind *:1' }], checkCaFile }],
    ['bad CA file path', { servers, checkCaFile: 'ca.crt' }],
    ['bad certificate file path', { servers, checkCaFile, checkCertFile: '/x y.pem' }],
    ['is not a port', { servers, checkCaFile, rwPort: 70000 }],
    ['collide', { servers, checkCaFile, rwPort: 5001 }],
    ['is not an HAProxy duration', { servers, checkCaFile, checkInterval: 'soon' }],
    ['fall and rise', { servers, checkCaFile, fall: 0 }],
    ['bad stats socket', { servers, checkCaFile, statsSocket: 'relative.sock' }],
    ...(
      [
        ['bad forwarder name', { name: 'a b' }],
        ['bad forwarder socket path', { socket: 'api.sock' }],
        ['bad forwarder address', { address: '10.0.0.1\n  bind *:1' }],
        ['is not a port', { port: 0 }],
      ] as const
    ).map(([msg, over]): [string, Parameters<typeof renderHaproxyConfig>[0]] => [
      msg,
      {
        servers,
        checkCaFile,
        unixForwards: [{ name: 'api-x', socket: '/tmp/x.sock', address: '10.0.0.1', port: 8008, ...over }],
      },
    ]),
  ];
  for (const [msg, o] of bad)
    assert.throws(
      () => renderHaproxyConfig(o),
      (e: unknown) => e instanceof UserError && e.message.includes(msg),
      msg,
    );
});

test('haproxy -c accepts the rendered config and refuses a broken one', {
  skip: !existsSync('/usr/sbin/haproxy') && 'haproxy not installed',
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgarbiter-haproxy-'));
  try {
    // A real CA and client certificate: haproxy -c loads both.
    const ca = await createCa(join(dir, 'tls'));
    const client = await issueMemberCert(join(dir, 'tls'), 'client', ['127.0.0.1']);
    const pem = join(dir, 'client.pem');
    writeFileSync(pem, readFileSync(client.cert, 'utf8') + readFileSync(client.key, 'utf8'));
    const good = join(dir, 'good.cfg');
    const o = {
      servers,
      checkCaFile: ca.cert,
      checkCertFile: pem,
      statsSocket: join(dir, 'haproxy.sock'),
      unixForwards: [
        { name: 'api-pg1', socket: join(dir, 'api-pg1.sock'), address: '10.213.0.11', port: 8008 },
      ],
    };
    writeFileSync(good, renderHaproxyConfig(o));
    await validateHaproxyConfig(good);
    const broken = join(dir, 'broken.cfg');
    writeFileSync(broken, `${renderHaproxyConfig(o)}\n    frobnicate yes\n`);
    await assert.rejects(validateHaproxyConfig(broken), /haproxy refused .*broken\.cfg/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('haproxyDsn gives the writer a single host:port on the client host, over TLS', () => {
  const lab = { dir: '/var/lib/pgarbiter-lab/x' } as Parameters<typeof haproxyDsn>[0];
  const rw = parseDsn(haproxyDsn(lab, 'rw'), { env: {} });
  assert.deepEqual(rw.endpoints, [{ host: '127.0.0.1', port: 5000 }]);
  assert.equal(rw.targetSessionAttrs, 'read-write');
  assert.equal(rw.user, 'app');
  // verify-ca: the proxy's address is not the name in the server's certificate.
  assert.deepEqual(rw.ssl, { mode: 'verify-ca', rootCert: '/var/lib/pgarbiter-lab/x/tls/ca.crt' });
  const ro = parseDsn(haproxyDsn(lab, 'ro'), { env: {} });
  assert.deepEqual(ro.endpoints, [{ host: '127.0.0.1', port: 5001 }]);
  assert.equal(ro.targetSessionAttrs, 'read-only');
});

test('parseShowStat keeps the server rows', () => {
  const csv = [
    '# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status',
    'primary,FRONTEND,,,3,4,2000,10,0,0,0,0,0,,,,,OPEN',
    'primary,pg1,0,0,3,4,100,10,0,0,,0,,0,0,0,0,UP',
    'primary,pg2,0,0,0,0,100,0,0,0,,0,,0,0,0,0,DOWN',
    'primary,BACKEND,0,0,3,4,200,10,0,0,0,0,,0,0,0,0,UP',
    'replicas,pg2,0,0,0,0,100,0,0,0,,0,,0,0,0,0,UP 1/2',
    '',
  ].join('\n');
  assert.deepEqual(parseShowStat(csv), [
    { proxy: 'primary', server: 'pg1', status: 'UP', sessions: 3, totalSessions: 10 },
    { proxy: 'primary', server: 'pg2', status: 'DOWN', sessions: 0, totalSessions: 0 },
    { proxy: 'replicas', server: 'pg2', status: 'UP 1/2', sessions: 0, totalSessions: 0 },
  ]);
  assert.throws(() => parseShowStat('garbage'), /unexpected "show stat" output/);
});
