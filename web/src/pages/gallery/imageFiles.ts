/**
 * Image files need the bearer token like every API call, so an <img src> pointing at the API would
 * get a 401. We fetch them with the token and show them through object URLs (the CSP allows `blob:`
 * images). Thumbnails are kept in a small LRU so going back from a detail view to the gallery, or
 * scrolling up again, shows them at once instead of fetching each again.
 */
import { fetchAuthorized } from '../../api/fetchAuthorized';

const THUMBNAIL_CACHE_LIMIT = 600; // ~256x256 JPEGs of ~10 kB: a few MB at most
const thumbnails = new Map<string, Promise<string>>();

function evictOldest(): void {
  while (thumbnails.size > THUMBNAIL_CACHE_LIMIT) {
    const [oldest, url] = thumbnails.entries().next().value as [string, Promise<string>];
    thumbnails.delete(oldest);
    url.then(URL.revokeObjectURL, () => undefined);
  }
}

export async function fetchImageBlob(url: string, signal?: AbortSignal): Promise<Blob> {
  const response = await fetchAuthorized(url, { signal });
  return response.blob();
}

/** An object URL for a thumbnail; shared and cached (callers must not revoke it). */
export function thumbnailObjectUrl(url: string): Promise<string> {
  const cached = thumbnails.get(url);
  if (cached) {
    // Refresh its place in the LRU order.
    thumbnails.delete(url);
    thumbnails.set(url, cached);
    return cached;
  }
  const pending = fetchImageBlob(url).then((blob) => URL.createObjectURL(blob));
  thumbnails.set(url, pending);
  pending.catch(() => thumbnails.delete(url)); // a failure is retried next time, not cached
  evictOldest();
  return pending;
}

/** Forget a deleted image's thumbnail. */
export function forgetThumbnail(url: string): void {
  const cached = thumbnails.get(url);
  thumbnails.delete(url);
  cached?.then(URL.revokeObjectURL, () => undefined);
}

export type DownloadFormat = 'png' | 'webp';

/** Fetch the original in the wanted format and hand it to the browser as a file download. */
export async function downloadImage(fileUrl: string, imageId: string, format: DownloadFormat): Promise<void> {
  const url = `${fileUrl}${fileUrl.includes('?') ? '&' : '?'}format=${format}`;
  const blob = await fetchImageBlob(url);
  const objectUrl = URL.createObjectURL(blob);
  try {
    const link = document.createElement('a');
    link.href = objectUrl;
    link.download = `fimum-${imageId}.${format}`;
    link.rel = 'noopener';
    document.body.append(link);
    link.click();
    link.remove();
  } finally {
    // Give the browser a moment to start the download before the URL goes away.
    setTimeout(() => URL.revokeObjectURL(objectUrl), 10_000);
  }
}
