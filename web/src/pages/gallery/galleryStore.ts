/**
 * The gallery's loaded pages outlive the page component: opening an image and coming back (or
 * pressing Back) shows the same items at the same scroll position instead of starting again at the
 * top, which is what makes an infinite scroll usable. Kept per signed-in user, in memory only.
 */
import type { GalleryImage } from './types';

export interface GallerySnapshot {
  owner: string;
  items: GalleryImage[];
  /** The next page's cursor; null when the last page is loaded. */
  nextCursor: string | null;
  /** Whether the first page has been loaded at all. */
  loaded: boolean;
  scrollY: number;
}

let snapshot: GallerySnapshot | null = null;

export function readGallery(owner: string): GallerySnapshot | null {
  return snapshot && snapshot.owner === owner ? snapshot : null;
}

export function saveGallery(next: GallerySnapshot): void {
  snapshot = next;
}

export function clearGallery(): void {
  snapshot = null;
}

/**
 * Merge a fetched page into the list. Pages may overlap when images were deleted elsewhere or a
 * page is retried, so items are de-duplicated by id, keeping the first occurrence.
 */
export function appendPage(items: GalleryImage[], page: GalleryImage[]): GalleryImage[] {
  const seen = new Set(items.map((item) => item.id));
  return [...items, ...page.filter((item) => !seen.has(item.id))];
}

/**
 * Remove an image. The server's cursor is the last loaded image's id, so deleting that image would
 * make the next page request fail with "unknown cursor": move the cursor to the new last item.
 */
export function removeImage(
  state: Pick<GallerySnapshot, 'items' | 'nextCursor'>,
  id: string,
): Pick<GallerySnapshot, 'items' | 'nextCursor'> {
  const items = state.items.filter((item) => item.id !== id);
  let nextCursor = state.nextCursor;
  if (nextCursor === id) nextCursor = items.at(-1)?.id ?? null;
  return { items, nextCursor };
}

/** Forget one image in the kept snapshot (after it was deleted from its detail view). */
export function removeFromSnapshot(id: string): void {
  if (!snapshot) return;
  const { items, nextCursor } = removeImage(snapshot, id);
  // Deleting the only loaded item of a longer gallery leaves no cursor: reload from the top.
  snapshot =
    items.length === 0 && snapshot.nextCursor !== null ? null : { ...snapshot, items, nextCursor };
}

/** Neighbours in the loaded list, for previous/next in the detail view. */
export function neighbours(id: string): { previous: GalleryImage | null; next: GalleryImage | null } {
  const items = snapshot?.items ?? [];
  const index = items.findIndex((item) => item.id === id);
  if (index < 0) return { previous: null, next: null };
  return { previous: items[index - 1] ?? null, next: items[index + 1] ?? null };
}
