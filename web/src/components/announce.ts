/**
 * Screen-reader announcements through one pair of live regions rendered by <LiveAnnouncer />
 * (mounted once in the app shell). `announce('Image 3 of 8 done')` from anywhere.
 */
export type Politeness = 'polite' | 'assertive';

type Sink = (message: string, politeness: Politeness) => void;
let sink: Sink | null = null;

export function setAnnouncer(next: Sink | null): void {
  sink = next;
}

export function announce(message: string, politeness: Politeness = 'polite'): void {
  sink?.(message, politeness);
}
