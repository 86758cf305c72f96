import type { Command } from 'commander';
export function registerWorkloadCommands(_program: Command): void {}
