// `pgarbiter dashboard`: the live page (src/dashboard/) on http://127.0.0.1:PORT.
import type { Command } from 'commander';
import { startDashboard } from '../dashboard/server.js';
import { requireRoot, resolveIdentity } from '../lab/index.js';
import { UserError } from '../util/errors.js';

export function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 65535)
    throw new UserError(`--port "${value}": give a port from 1 to 65535`);
  return n;
}

/** How the dashboard introduces itself: where it is and the token for its buttons. */
export function dashboardBanner(url: string, token: string): string {
  return [
    `dashboard: ${url}#token=${token}`,
    `  buttons need the token ${token} (or the cluster secret); Ctrl-C stops the dashboard`,
  ].join('\n');
}

export function registerDashboardCommand(program: Command): void {
  program
    .command('dashboard')
    .summary('a live web page of the cluster, with buttons for faults and operations')
    .description(
      'a live page of the cluster: hosts and links, roles, a chart of committed writes with the faults ' +
        'and failovers marked, the events; buttons for the lab faults and the operations',
    )
    .option('--port <n>', 'TCP port', '8080')
    .option('--listen <address>', 'address to listen on (only loopback unless you say so)', '127.0.0.1')
    .option('-c, --config <file>', 'watch a real deployment (any member config) instead of the lab')
    .option('--prefix <prefix>', 'lab name prefix (default: $PGARBITER_LAB_PREFIX or pga)')
    .action(async (o: { port: string; listen: string; config?: string; prefix?: string }) => {
      const port = parsePort(o.port);
      if (!o.config) requireRoot('pgarbiter dashboard (on the lab)');
      const d = await startDashboard({
        port,
        listen: o.listen,
        configFile: o.config,
        prefix: o.config ? undefined : resolveIdentity({ prefix: o.prefix }).prefix,
      });
      process.stdout.write(`${dashboardBanner(d.url, d.token)}\n`);
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      await d.close();
      process.stdout.write('dashboard stopped\n');
    });
}
