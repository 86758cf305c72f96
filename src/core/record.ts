// The cluster record's transitions that more than one place builds. Pure.
import type { ClusterRecord } from './types.js';

/** The record a cluster starts with: `primary` serves, the other node is its standby, not
 *  promotable until the primary has seen it replicate. */
export function initialRecord(primary: string, standby: string): ClusterRecord {
  return { term: 1, primary, standby, standbyPromotable: false, maintenance: false };
}

/** The next term with `to` as primary. The old primary becomes the standby, not promotable until
 *  it has rejoined and caught up. Used by grants, handovers, forced failovers (arbiter or agent). */
export function nextTermRecord(rec: ClusterRecord, to: string): ClusterRecord {
  return { ...rec, term: rec.term + 1, primary: to, standby: rec.primary, standbyPromotable: false };
}
