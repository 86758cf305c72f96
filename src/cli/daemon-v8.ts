// Imported first by main.ts: a daemon's V8 settings (src/util/heap.ts) apply to the code loaded after them.
import { DAEMON_COMMANDS, leanV8 } from '../util/heap.js';

if (DAEMON_COMMANDS.includes(process.argv[2] ?? '')) leanV8();
