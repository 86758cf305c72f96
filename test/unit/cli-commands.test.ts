// src/cli/commands.ts loads a command's file only: its lists must name what each file registers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command } from 'commander';
import { buildProgram, COMMAND_GROUPS } from '../../src/cli/commands.js';

test('each group of commands lists exactly the commands its file registers', async () => {
  for (const g of COMMAND_GROUPS) {
    const p = new Command('pgarbiter');
    (await g.load())(p);
    assert.deepEqual(p.commands.map((c) => c.name()).sort(), [...g.commands].sort());
  }
});

test('a command gets its own group; --version none; no command, help or an unknown one gets every command', async () => {
  const all = COMMAND_GROUPS.flatMap((g) => g.commands).sort();
  assert.deepEqual(
    (await buildProgram('status')).commands.map((c) => c.name()).sort(),
    [...COMMAND_GROUPS.find((g) => g.commands.includes('status'))!.commands].sort(),
  );
  for (const arg of ['--version', '-V']) assert.equal((await buildProgram(arg)).commands.length, 0);
  for (const arg of [undefined, '--help', 'stauts'])
    assert.deepEqual((await buildProgram(arg)).commands.map((c) => c.name()).sort(), all);
});
