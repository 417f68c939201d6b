/** Small formatting helpers shared by pages. */

/** "in 3 h 20 min", "in 45 s" */
export function formatDuration(totalSeconds: number): string {
  const seconds = Math.max(0, Math.round(totalSeconds));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min${seconds % 60 && minutes < 5 ? ` ${seconds % 60} s` : ''}`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return rest ? `${hours} h ${rest} min` : `${hours} h`;
}

/** A local date and time for an ISO string or a Date, e.g. "26 Nov 2026, 00:00". */
export function formatDateTime(value: string | Date | number): string {
  const date = value instanceof Date ? value : new Date(value);
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** "resets at 01:00 (in 1 h 20 min)" */
export function formatReset(resetsAt: string | Date, now: number = Date.now()): string {
  const date = resetsAt instanceof Date ? resetsAt : new Date(resetsAt);
  const time = date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  return `${time} (in ${formatDuration((date.getTime() - now) / 1000)})`;
}
