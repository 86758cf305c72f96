// Chart.js's UMD bundle, inlined into self-contained pages (the demo report, the dashboard).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

let chartJsSource: string | undefined;

/** The Chart.js UMD bundle, read from node_modules, safe to place inside a <script> element. */
export function chartJs(): string {
  if (chartJsSource === undefined) {
    const dist = dirname(createRequire(import.meta.url).resolve('chart.js'));
    let src: string | undefined;
    for (const name of ['chart.umd.js', 'chart.umd.min.js']) {
      try {
        src = readFileSync(join(dist, name), 'utf8');
        break;
      } catch {}
    }
    if (src === undefined) throw new Error(`Chart.js UMD bundle not found in ${dist}`);
    chartJsSource = src.replace(/^\/\/# sourceMappingURL=.*$/m, '').replace(/<\/script/gi, '<\\/script');
  }
  return chartJsSource;
}
