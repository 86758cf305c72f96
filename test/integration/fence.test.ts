// The budgeted fence against the real netfilter: nft (the default) and iptables(-nft), inside
// network namespaces this file creates (prefix `pgfft-`, removed in after() and at the start if a
// crashed run left them). No PostgreSQL: a TCP echo server on the port stands for it, so what is
// checked is the rule's effect on TCP as a client sees it.
//
//   pgfft-srv   10.214.9.1 (to peer), 10.214.9.5 + fd00:214::1 (to other); echo server on PORT
//   pgfft-peer  10.214.9.2   the peer database node: exempt
//   pgfft-other 10.214.9.6 + fd00:214::2   any other client: rejected
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { FENCE_MECHANISMS, Fence, IPTABLES_COMMENT } from '../../src/fence/fence.js';
import { Lease } from '../../src/fence/lease.js';
import { nftFenceRuleCount, nftListArgv } from '../../src/fence/nft.js';
import { NftShell } from '../../src/fence/nft-shell.js';
import { run, sleep } from '../../src/util/exec.js';

const PREFIX = 'pgfft-';
const SRV = `${PREFIX}srv`;
const PEER = `${PREFIX}peer`;
const OTHER = `${PREFIX}other`;
const PORT = 5432;
const SRV_TO_PEER = '10.214.9.1';
const PEER_ADDR = '10.214.9.2';
const SRV_TO_OTHER = '10.214.9.5';
const OTHER_ADDR = '10.214.9.6';
const SRV_V6 = 'fd00:214::1';
const OTHER_V6 = 'fd00:214::2';
const isRoot = process.getuid?.() === 0;
const skip = isRoot ? false : 'needs root (network namespaces, netfilter)';

const sh = (argv: string[]) => run(argv, { timeoutMs: 10_000 });
const inNs = (ns: string, argv: string[]) => sh(['ip', 'netns', 'exec', ns, ...argv]);

async function ourNamespaces(): Promise<string[]> {
  const r = await sh(['ip', 'netns', 'list']);
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(PREFIX));
}

/** Kills what runs inside our namespaces (only ours: they are named with our prefix), then
 *  deletes them. */
async function cleanup(): Promise<void> {
  for (const ns of await ourNamespaces()) {
    const pids = await run(['ip', 'netns', 'pids', ns], { timeoutMs: 5000, allowFailure: true });
    for (const p of pids.stdout.split('\n').filter(Boolean)) {
      try {
        process.kill(Number(p), 'SIGKILL');
      } catch {}
    }
    await run(['ip', 'netns', 'del', ns], { timeoutMs: 5000, allowFailure: true });
  }
}

async function setup(): Promise<void> {
  for (const ns of [SRV, PEER, OTHER]) {
    await sh(['ip', 'netns', 'add', ns]);
    await sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  }
  const link = async (local: string, ns: string, a: string, b: string, v6?: [string, string]) => {
    await sh(['ip', '-n', SRV, 'link', 'add', local, 'type', 'veth', 'peer', 'name', 'e0', 'netns', ns]);
    await sh(['ip', '-n', SRV, 'addr', 'add', `${a}/30`, 'dev', local]);
    await sh(['ip', '-n', ns, 'addr', 'add', `${b}/30`, 'dev', 'e0']);
    if (v6) {
      await sh(['ip', '-n', SRV, 'addr', 'add', `${v6[0]}/64`, 'dev', local, 'nodad']);
      await sh(['ip', '-n', ns, 'addr', 'add', `${v6[1]}/64`, 'dev', 'e0', 'nodad']);
    }
    await sh(['ip', '-n', SRV, 'link', 'set', local, 'up']);
    await sh(['ip', '-n', ns, 'link', 'set', 'e0', 'up']);
  };
  await link('vpeer', PEER, SRV_TO_PEER, PEER_ADDR);
  await link('vother', OTHER, SRV_TO_OTHER, OTHER_ADDR, [SRV_V6, OTHER_V6]);
}

const ECHO_SERVER = `
const net = require('node:net');
net.createServer((s) => { s.on('error', () => {}); s.pipe(s); })
  .listen({ port: Number(process.argv[1]), host: '::', ipv6Only: false }, () => console.log('listening'));
`;

/** A client inside `ns`: connects, sends a line, expects it back. With `hold`, it then waits for
 *  a line on stdin and tries again on the same connection (an established session). Prints
 *  open | refused | reset | timeout for each attempt. */
const PROBE = `
const net = require('node:net');
const [host, port, hold] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port) });
let done = false;
const say = (w) => { console.log(w); };
const finish = (w) => { if (!done) { done = true; say(w); process.exit(0); } };
s.setTimeout(3000, () => finish('timeout'));
s.on('error', (e) => finish(e.code === 'ECONNREFUSED' ? 'refused' : e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'reset' : 'error ' + e.code));
s.on('close', () => finish('reset'));
let round = 0;
s.on('data', () => {
  round++;
  if (hold !== 'hold' || round === 2) return finish('open');
  say('open');
  process.stdin.once('data', () => s.write('again\\n'));
});
s.on('connect', () => s.write('ping\\n'));
`;

type Outcome = 'open' | 'refused' | 'reset' | 'timeout' | string;

async function probe(ns: string, host: string): Promise<Outcome> {
  const r = await run(['ip', 'netns', 'exec', ns, process.execPath, '-e', PROBE, host, String(PORT)], {
    timeoutMs: 15_000,
    allowFailure: true,
  });
  return r.stdout.trim() || `error: ${r.stderr.trim()}`;
}

/** An established session from `ns`, checked again after `between`. */
async function heldSession(
  ns: string,
  host: string,
  between: () => Promise<void>,
): Promise<[Outcome, Outcome]> {
  const child = spawn(
    'ip',
    ['netns', 'exec', ns, process.execPath, '-e', PROBE, host, String(PORT), 'hold'],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  try {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    const lines = async (n: number) => {
      const t0 = Date.now();
      while (out.split('\n').filter(Boolean).length < n && Date.now() - t0 < 15_000) await sleep(20);
      return out.split('\n').filter(Boolean);
    };
    const first = (await lines(1))[0] ?? 'no answer';
    await between();
    child.stdin.write('go\n');
    const second = (await lines(2))[1] ?? 'no answer';
    return [first, second];
  } finally {
    if (child.exitCode === null && child.pid) child.kill('SIGKILL');
  }
}

/** The number of our reject rules in `SRV`, whichever the mechanism. */
async function ruleCount(mechanism: string): Promise<number> {
  if (mechanism === 'nft') {
    const r = await run(['ip', 'netns', 'exec', SRV, ...nftListArgv(PORT)], {
      timeoutMs: 5000,
      allowFailure: true,
    });
    return r.code === 0 ? nftFenceRuleCount(r.stdout, PORT) : 0;
  }
  const r = await inNs(SRV, ['iptables', '-S', 'INPUT']);
  return r.stdout.split('\n').filter((l) => l.includes(IPTABLES_COMMENT)).length;
}

const noClients = async (_ms: number) => 0;

describe('fence (real netfilter in network namespaces)', { skip }, () => {
  let server: ChildProcess | undefined;

  before(async () => {
    await cleanup();
    await setup();
    server = spawn('ip', ['netns', 'exec', SRV, process.execPath, '-e', ECHO_SERVER, String(PORT)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [d] = (await Promise.race([
      once(server.stdout!, 'data'),
      sleep(15_000).then(() => ['timeout']),
    ])) as [Buffer | string];
    assert.match(String(d), /listening/, 'the echo server started');
    // Before any fence every path is open: otherwise the checks below would prove nothing.
    assert.equal(await probe(OTHER, SRV_TO_OTHER), 'open');
    assert.equal(await probe(OTHER, SRV_V6), 'open');
    assert.equal(await probe(PEER, SRV_TO_PEER), 'open');
    assert.equal(await probe(SRV, '127.0.0.1'), 'open');
  });

  after(async () => {
    if (server?.pid && server.exitCode === null) server.kill('SIGKILL');
    await cleanup();
    assert.deepEqual(await ourNamespaces(), [], 'no namespace left behind');
  });

  for (const mechanism of FENCE_MECHANISMS) {
    describe(mechanism, () => {
      const fence = new Fence(PORT, PEER_ADDR, 5000, { mechanism, netns: SRV });

      test("dry run (the agent's startup check): passes as root and changes nothing", async () => {
        await fence.dryRun();
        assert.equal(await fence.isFenced(), false);
        assert.equal(await ruleCount(mechanism), 0);
        assert.equal(await probe(OTHER, SRV_TO_OTHER), 'open');
      });

      test('fence: others refused (established sessions reset), the peer and loopback accepted', async () => {
        assert.equal(await fence.isFenced(), false);
        let result: Awaited<ReturnType<Fence['fence']>> | undefined;
        let askedMs = -1;
        const [before, afterFence] = await heldSession(OTHER, SRV_TO_OTHER, async () => {
          result = await fence.fence(async (ms) => {
            askedMs = ms;
            return 3;
          });
        });
        assert.ok(result);
        assert.equal(result.fenced, true, result.error);
        assert.equal(result.terminated, 3, 'the terminate function was called and its count reported');
        assert.ok(askedMs > 0 && askedMs <= 5000, `termination allowance within the budget (${askedMs})`);
        assert.equal(result.error, undefined);
        assert.equal(before, 'open');
        assert.equal(afterFence, 'reset', 'an established session from another address is reset');
        assert.equal(await fence.isFenced(), true);
        assert.equal(await probe(OTHER, SRV_TO_OTHER), 'refused');
        assert.equal(await probe(PEER, SRV_TO_PEER), 'open', 'the peer database node is exempt');
        assert.equal(await probe(SRV, '127.0.0.1'), 'open', 'loopback is exempt');
        // iptables rules are IPv4 only; the nft table is inet (both).
        assert.equal(await probe(OTHER, SRV_V6), mechanism === 'nft' ? 'refused' : 'open');
      });

      test('fence twice: still one rule, and the timing adds up', async () => {
        const r = await fence.fence(noClients);
        assert.equal(r.fenced, true, r.error);
        assert.equal(await ruleCount(mechanism), 1);
        assert.ok(r.ms > 0 && r.ms < 5000, `ms ${r.ms}`);
        assert.ok(Math.abs(r.ruleMs + r.terminateMs - r.ms) <= 0.3, JSON.stringify(r));
        assert.equal(r.overran, r.ms > 5000);
        assert.equal(r.budgetMs, 5000);
      });

      test('unfence: accepted again; unfencing twice is fine', async () => {
        await fence.unfence();
        assert.equal(await fence.isFenced(), false);
        assert.equal(await ruleCount(mechanism), 0);
        assert.equal(await probe(OTHER, SRV_TO_OTHER), 'open');
        assert.equal(await probe(OTHER, SRV_V6), 'open');
        await fence.unfence();
        assert.equal(await fence.isFenced(), false);
      });

      test('a 1 ms budget and a termination that hangs: overran, and fence() still returns soon', async () => {
        const tiny = new Fence(PORT, PEER_ADDR, 1, { mechanism, netns: SRV });
        const t0 = performance.now();
        let askedMs = -1;
        const r = await tiny.fence(async (ms) => {
          askedMs = ms;
          await sleep(10_000);
          return 1;
        });
        const took = performance.now() - t0;
        try {
          assert.equal(r.overran, true);
          assert.equal(r.fenced, true, 'a slow rule is not abandoned at the budget');
          assert.equal(r.terminated, null);
          assert.match(r.error ?? '', /terminating client sessions/);
          assert.ok(askedMs > 0 && askedMs <= 1, `allowance ${askedMs}`);
          // The rule may take up to ruleTimeoutMs (1 s here); the hanging termination adds ~nothing.
          assert.ok(took < 3000, `returned after ${took} ms`);
          assert.ok(r.ms <= took + 1);
          assert.equal(await probe(OTHER, SRV_TO_OTHER), 'refused');
        } finally {
          await tiny.unfence();
        }
      });

      test('a failing termination: still fenced, the error reported', async () => {
        const r = await fence.fence(async () => {
          throw new Error('no PostgreSQL here');
        });
        try {
          assert.equal(r.fenced, true);
          assert.equal(r.terminated, null);
          assert.match(r.error ?? '', /no PostgreSQL here/);
        } finally {
          await fence.unfence();
        }
      });

      test('a rule that cannot be applied: fenced false with the error, no throw', async () => {
        const broken = new Fence(PORT, PEER_ADDR, 500, { mechanism, netns: `${PREFIX}missing` });
        let called = false;
        const r = await broken.fence(async () => {
          called = true;
          return 0;
        });
        assert.equal(r.fenced, false);
        assert.match(r.error ?? '', /^rule: /);
        assert.ok(called, 'client sessions are still terminated');
        await assert.rejects(broken.isFenced());
      });
    });
  }

  test('a peer given by name that does not resolve: not exempt (the safe side)', async () => {
    const f = new Fence(PORT, 'no-such-host.invalid', 5000, { netns: SRV });
    try {
      const r = await f.fence(noClients);
      assert.equal(r.fenced, true, r.error);
      assert.equal(await probe(PEER, SRV_TO_PEER), 'refused');
      assert.equal(await probe(SRV, '127.0.0.1'), 'open');
    } finally {
      await f.unfence();
    }
    assert.equal(await probe(PEER, SRV_TO_PEER), 'open');
  });

  test("the lease's nft shell: one line is one transaction, errors are reported, an ended shell is replaced", async () => {
    const sh = new NftShell(SRV);
    try {
      const ok = await sh.run('add table inet pgfft_shell\nadd chain inet pgfft_shell c');
      assert.equal(ok.ok, true, ok.output);
      assert.match((await sh.run('list table inet pgfft_shell')).output, /chain c \{/);
      // A script whose last statement fails changes nothing: the whole line is one transaction.
      const bad = await sh.run('add chain inet pgfft_shell d\nadd rule inet pgfft_shell nope accept');
      assert.equal(bad.ok, false);
      assert.match(bad.output, /^Error: /m);
      assert.doesNotMatch((await sh.run('list table inet pgfft_shell')).output, /chain d/);
      // The shell ended (as after a command that timed out): the next command starts another.
      sh.close();
      assert.equal((await sh.run('delete table inet pgfft_shell')).ok, true);
      const missing = await sh.run('list table inet pgfft_shell');
      assert.equal(missing.ok, false);
      assert.match(missing.output, /No such file or directory/);
    } finally {
      await sh.run('delete table inet pgfft_shell').catch(() => {});
      sh.close();
    }
  });

  test('the lease through the shell: held with the deadline asked, state read back, opened', async () => {
    const lease = new Lease(PORT, [PEER_ADDR], 3000, { netns: SRV });
    try {
      await lease.hold(Date.now() + 3000);
      const s = await lease.state();
      assert.ok(s.table && s.remainingMs > 2000 && s.remainingMs <= 3000, JSON.stringify(s));
      assert.equal(await probe(OTHER, SRV_TO_OTHER), 'open', 'a client passes while the lease is held');
      await lease.hold(Date.now() - 1);
      assert.deepEqual(await lease.state(), { table: true, remainingMs: 0 });
      assert.notEqual(await probe(OTHER, SRV_TO_OTHER), 'open', 'a lapsed lease blocks clients');
      assert.equal(await probe(PEER, SRV_TO_PEER), 'open', 'the peer stays exempt');
    } finally {
      await lease.open();
      lease.close();
    }
    assert.deepEqual(await new Lease(PORT, [], 0, { netns: SRV }).state(), { table: false });
    assert.equal(await probe(OTHER, SRV_TO_OTHER), 'open');
  });
});
