// The agent's rules, by name. Every decision of src/core/agent.ts carries the id of the rule that
// made it: in the action, in the log line, in the README's rules table and in the tests that pin
// it (test/unit/core-agent.test.ts). One line each says what the rule does and why.

export const RULES = {
  // ---- every node
  'adopt-newer-term':
    'A record with a newer term, from the arbiter or from the peer agent, replaces ours: a term is a fact anyone may carry.',
  'push-term-to-arbiter':
    'The arbiter holds an older term than ours (a failover forced while it was down): we tell it (/adopt).',
  // ---- primary
  'promote-on-record':
    'The record names us primary but our server is a standby (a grant, a handover): promote.',
  'fence-isolated':
    'Neither the standby nor the arbiter answered for fence_timeout: fence before the arbiter can grant (failover_timeout).',
  'fence-after-pause':
    'Our loop was late by more than fence_timeout and the arbiter does not answer: what we knew is stale, fence.',
  'restart-fenced':
    'PostgreSQL is down: fence first, then start it; clients come back once our term is confirmed.',
  'maintenance-no-restart': 'Maintenance mode: a stopped PostgreSQL is left stopped.',
  'wait-for-startup':
    'The server runs but does not answer yet (starting, crash recovery): nothing to decide.',
  'unfence-confirmed':
    'Fenced, and the arbiter names us primary: ask it to confirm our term, unfence when it does.',
  'unfence-vouched':
    'Fenced, the arbiter silent, and our standby streams from us and vouches for us in our term: unfence without the arbiter.',
  'stay-fenced': 'Fenced, and nobody can confirm our term: stay fenced.',
  'fence-unreached':
    'We reach a peer, but no peer has reached our PostgreSQL for fence_timeout: to them we are lost, fence.',
  switchover:
    'A person asked for a switchover and the standby is healthy, caught up and promotable: hand over.',
  'switchover-refused':
    'A person asked for a switchover but the standby is not ready: refuse, change nothing.',
  serve: 'The primary serves.',
  'hold-lease':
    'The primary may serve: hold the kernel-side lease until the last vouch + lease duration, so a dead or frozen agent stops clients by itself.',
  'sync-degrade':
    'The synchronous standby stopped acknowledging for sync_stall_timeout: the arbiter marks it not promotable, then sync is dropped.',
  'sync-keep':
    'The standby stalls but the arbiter cannot be told (or sync is strict): keep waiting, never drop sync silently.',
  'sync-restore':
    'Sync is off and the standby streams, caught up, with the arbiter reachable: set sync again.',
  'promotable-after-catch-up':
    'Sync is on again: the standby becomes promotable once it has flushed past the end of WAL seen when sync came back.',
  'not-promotable-sync-off':
    'Sync is off: the standby may lack acknowledged writes, the arbiter marks it not promotable.',
  'promotable-async':
    'Asynchronous mode: the standby is promotable while it streams (its lag may be lost, by choice).',
  'not-promotable-async':
    'Asynchronous mode: the standby stopped streaming for sync_stall_timeout: not promotable.',
  // ---- standby
  'step-down': 'Our server runs as a primary, but a newer term names another node: fence, rewind, follow it.',
  'former-primary-dir':
    'Our stopped server is a former primary: starting it would make a second primary; fence, rejoin.',
  'manual-rejoin': 'A person asked for a rejoin: fence, rewind (or base backup) from the primary, follow it.',
  'needs-manual-rejoin':
    'Replaced as primary and rejoin is manual: stay fenced until a person runs `pgarbiter rejoin`.',
  'start-standby': 'The standby PostgreSQL is down: start it.',
  'wait-for-standby-startup': 'The standby runs but does not answer yet: nothing to decide.',
  'unfence-standby': 'A standby accepts no writes: remove a fence left from when it was primary.',
  'rejoin-not-receiving':
    'Up, in recovery, the primary reachable, yet receiving no WAL for 20 s (a forked timeline, a lost slot): rejoin.',
  follow: 'The standby follows the primary.',
  'no-lease-standby':
    'A running standby takes no writes: it needs no lease; remove one left from when it was primary.',
  'no-failover-maintenance': 'The primary is lost but maintenance mode pauses automatic failover.',
  'no-failover-no-arbiter': 'The primary is lost but the arbiter does not answer: no failover without it.',
  'no-failover-not-promotable':
    'The primary is lost but this standby may lack acknowledged writes: no failover.',
  'request-promotion':
    'The primary lost for failover_timeout: ask the arbiter for a grant; stop vouching for the primary in this term.',
  // ---- replies
  'reply-granted': 'The arbiter granted us the next term: adopt its record, promote.',
  'reply-refused': 'The arbiter refused: adopt its record if newer; a refused promotion lets us vouch again.',
  'reply-lost': 'The arbiter did not answer: nothing is known; a promotion request stays outstanding.',
  'reply-confirmed': 'The arbiter confirmed our term: unfence.',
  'reply-sync-dropped': 'The arbiter marked the standby not promotable: now drop synchronous replication.',
} as const;

export type RuleId = keyof typeof RULES;
