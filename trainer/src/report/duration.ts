/** A duration for people, as the report, `tensorfleet runs` and the local progress line write it. */

/** 4500 ms as "4.5 s" (tenths only under 10 s), 15000 as "15 s", 75000 as "1 min 15 s", 7265000 as "2 h 1 min"; undefined as "-". */
export function formatDuration(ms: number | undefined): string {
  if (ms === undefined) return '-';
  if (ms < 9_950) return `${(ms / 1000).toFixed(1)} s`;
  // Whole seconds first, so that 119.6 s is "2 min 0 s", not "1 min 60 s".
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
