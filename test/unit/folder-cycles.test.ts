// The folders of src/ form an acyclic graph: a folder (the first directory under src/, or a top-level
// file such as config.ts on its own) never imports, directly or through others, a folder that imports
// it back. Reads the sources as text: every `import ... from '...'`, `export ... from '...'`,
// side-effect `import '...'` and dynamic `import('...')` with a relative path counts.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

/** The repository root, from test/unit/ here or from dist/test/unit/ once compiled. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      if (readdirSync(dir).includes('package.json')) return dir;
    } catch {
      // keep climbing
    }
    dir = dirname(dir);
  }
  throw new Error('package.json not found above the test file');
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...tsFiles(path));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

const SPECIFIER = [
  /\b(?:import|export)\s[^;]*?\bfrom\s*['"]([^'"]+)['"]/g,
  /\bimport\s*['"]([^'"]+)['"]/g,
  /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
];

/** The unit a path under src/ belongs to: its first directory, or the file itself at the top. */
function unitOf(srcDir: string, file: string): string | undefined {
  const rel = relative(srcDir, file);
  if (rel.startsWith('..')) return undefined;
  const parts = rel.split(sep);
  return parts.length > 1 ? parts[0] : parts[0]!.replace(/\.[jt]s$/, '');
}

/** Folder -> folders it imports (other than itself), each with one file that does it, for the message. */
export function folderGraph(srcDir: string): Map<string, Map<string, string>> {
  const graph = new Map<string, Map<string, string>>();
  for (const file of tsFiles(srcDir)) {
    const from = unitOf(srcDir, file)!;
    const edges = graph.get(from) ?? new Map<string, string>();
    graph.set(from, edges);
    // Comments can quote imports; drop them (roughly: block comments and whole-line // comments).
    const text = readFileSync(file, 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/^\s*\/\/.*$/gm, '');
    for (const pattern of SPECIFIER) {
      for (const match of text.matchAll(pattern)) {
        const spec = match[1]!;
        if (!spec.startsWith('.')) continue;
        const to = unitOf(srcDir, resolve(dirname(file), spec));
        if (to === undefined || to === from) continue;
        if (!edges.has(to)) edges.set(to, relative(srcDir, file));
      }
    }
  }
  return graph;
}

/** Every elementary cycle's representative: one cycle per strongly connected component. */
export function findCycles(graph: Map<string, Map<string, string>>): string[][] {
  const cycles: string[][] = [];
  const seen = new Set<string>();
  for (const start of [...graph.keys()].sort()) {
    // Shortest path from each successor back to start (BFS), so the message is the tightest cycle.
    const prev = new Map<string, string>();
    const queue = [...(graph.get(start)?.keys() ?? [])].sort();
    for (const n of queue) prev.set(n, start);
    let found = false;
    while (queue.length > 0 && !found) {
      const node = queue.shift()!;
      if (node === start) {
        found = true;
        break;
      }
      for (const next of [...(graph.get(node)?.keys() ?? [])].sort()) {
        if (prev.has(next)) continue;
        prev.set(next, node);
        queue.push(next);
      }
    }
    if (!found) continue;
    const path = [start];
    let node = prev.get(start)!;
    while (node !== start) {
      path.unshift(node);
      node = prev.get(node)!;
    }
    path.unshift(start);
    const key = [...new Set(path)].sort().join(',');
    if (seen.has(key)) continue;
    seen.add(key);
    cycles.push(path);
  }
  return cycles;
}

function describe(graph: Map<string, Map<string, string>>, cycle: string[]): string {
  const steps = cycle.slice(1).map((to, i) => `${cycle[i]} -> ${to} (${graph.get(cycle[i]!)!.get(to)})`);
  return `  ${cycle.join(' -> ')}\n${steps.map((s) => `      ${s}`).join('\n')}`;
}

test('the folder graph of src/ finds the imports, including multi-line and re-exports', () => {
  const graph = folderGraph(join(repoRoot(), 'src'));
  assert.ok(graph.get('cli')?.has('workload'), 'cli imports workload');
  assert.ok(graph.get('config')?.has('util'), 'config.ts is a unit of its own and imports util');
  assert.ok(graph.has('core') && graph.has('util'));
});

test('the cycle finder reports a two-folder and a three-folder cycle, and none in a DAG', () => {
  const g = (edges: [string, string][]) => {
    const m = new Map<string, Map<string, string>>();
    for (const [a, b] of edges) {
      if (!m.has(a)) m.set(a, new Map());
      if (!m.has(b)) m.set(b, new Map());
      m.get(a)!.set(b, `${a}/x.ts`);
    }
    return m;
  };
  assert.deepEqual(
    findCycles(
      g([
        ['a', 'b'],
        ['b', 'a'],
      ]),
    ),
    [['a', 'b', 'a']],
  );
  assert.deepEqual(
    findCycles(
      g([
        ['a', 'b'],
        ['b', 'c'],
        ['c', 'a'],
        ['c', 'd'],
      ]),
    ),
    [['a', 'b', 'c', 'a']],
  );
  assert.deepEqual(
    findCycles(
      g([
        ['a', 'b'],
        ['b', 'c'],
        ['a', 'c'],
      ]),
    ),
    [],
  );
});

test('no import cycles between the folders of src/', () => {
  const graph = folderGraph(join(repoRoot(), 'src'));
  const cycles = findCycles(graph);
  assert.equal(
    cycles.length,
    0,
    `import cycles between folders of src/ (first folder -> ... -> back, with one importing file per step):\n${cycles
      .map((c) => describe(graph, c))
      .join('\n')}`,
  );
});
