// The lab API used by the CLI, the demo, the tests and the benchmarks.
export { runAttached } from '../util/exec.js';
export { CLI_MAIN, daemonAlive, hostArgv, selfArgv, startDaemon, stopDaemon } from './daemon.js';
export * from './haproxy.js';
export * from './lab.js';
export * from './members.js';
export * from './pgconf.js';
export { netnsPids, pidAlive } from './proc.js';
export * from './psql.js';
export { collectStage1, formatStage1, type Stage1Result, showStage1 } from './stage1.js';
export {
  configPath,
  type DaemonRecord,
  type Lab,
  type LabHost,
  type LabSettings,
  loadLab,
  readLab,
  saveLab,
} from './state.js';
export * from './tls.js';
export * from './topology.js';
