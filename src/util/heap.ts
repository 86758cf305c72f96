// The daemons' memory (issue 13, item 4: an idle daemon <= 60 MB RSS). Measured on an idle lab
// (bench/README.md, bench/light): of ~66 MB at start, ~40 MB is the node binary's own pages and
// ~12 MB the live heap (mostly the modules' code); the rest grew with time, to 69-76 MB in 5 minutes:
// - the agents promote ~75 KB/s to the old generation (HAProxy's checks, probes, API calls), and V8
//   lets it grow by at least 8 MB before a full collection: a saw-tooth 8 MB above the live heap;
// - TurboFan, the optimizing compiler, optimizes the busiest functions: ~4 MB of the binary's code
//   pages and its compile zones, for a process that runs a few short rounds a second;
// - loading the modules grows the young generation to 16 MB, given back only later.
// Set from the process itself, not by flags on node's command line, so every way of launching a
// daemon (systemd unit, container, lab, by hand) gets them.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** The commands that run for months. */
export const DAEMON_COMMANDS: readonly string[] = ['agent', 'arbiter'];

/** V8 settings of a daemon; they take effect for what runs after them, so main.ts sets them first
 *  (tests: test/unit/heap.test.ts). TurboFan off: Ignition and Sparkplug still run everything. */
export function leanV8(): void {
  setFlagsFromString('--no-opt');
  setFlagsFromString('--semi-space-growth-factor=1');
}

/** How often a daemon collects its whole heap: ~1.5 MB of promoted garbage in between, and a
 *  compacting collection of a ~12 MB heap costs ~57 ms of CPU here (~0.3 % of a core); every
 *  15 s gave no less memory (bench/README.md). */
export const HEAP_COLLECT_INTERVAL_MS = 20_000;

/** Collects (and compacts) the whole heap every `intervalMs`, so the pages it frees go back to
 *  the system: without compaction ~3 MB of the old generation stayed in half-empty pages. */
export function collectHeapEvery(intervalMs = HEAP_COLLECT_INTERVAL_MS): NodeJS.Timeout {
  setFlagsFromString('--compact-on-every-full-gc');
  // --expose-gc after start-up defines gc() in contexts created from now on, not in ours.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as NodeJS.GCFunction;
  // No argument: Node 20's V8 takes any argument, even { type: 'major' }, for a young-generation collection.
  return setInterval(() => gc(), intervalMs).unref();
}
