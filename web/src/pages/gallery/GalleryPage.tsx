import { useCallback, useEffect, useLayoutEffect, useReducer, useRef } from 'react';
import { Link } from 'react-router';
import { api } from '../../api/client';
import { useAuth } from '../../auth/AuthContext';
import { announce } from '../../components/announce';
import { Button } from '../../components/Button';
import { ErrorMessage } from '../../components/ErrorMessage';
import { PageHeader } from '../../components/PageHeader';
import { Spinner } from '../../components/Spinner';
import { Thumbnail } from './AuthorizedImage';
import { appendPage, readGallery, saveGallery } from './galleryStore';
import { formatDate, imageLabel, modeLabel } from './metadata';
import { GALLERY_PAGE_SIZE, THUMBNAIL_SIZE, type GalleryImage, type GalleryPage as Page } from './types';
import './gallery.css';

interface State {
  items: GalleryImage[];
  nextCursor: string | null;
  loaded: boolean;
  loading: boolean;
  error: unknown;
}

type Action =
  | { type: 'start' }
  | { type: 'page'; page: Page }
  | { type: 'head'; page: Page }
  | { type: 'failed'; error: unknown };

function reducer(state: State, action: Action): State {
  switch (action.type) {
    case 'start':
      return { ...state, loading: true, error: null };
    case 'page':
      return {
        items: appendPage(state.items, action.page.items),
        nextCursor: action.page.next_cursor,
        loaded: true,
        loading: false,
        error: null,
      };
    case 'failed':
      return { ...state, loading: false, error: action.error };
    case 'head': {
      // Back at a kept gallery: put images made since on top. No overlap with what we kept means
      // more than a page is new, so start again from the fresh first page.
      const known = new Set(state.items.map((item) => item.id));
      if (!action.page.items.some((item) => known.has(item.id))) {
        return { ...state, items: action.page.items, nextCursor: action.page.next_cursor, loaded: true };
      }
      const fresh = action.page.items.filter((item) => !known.has(item.id));
      return fresh.length ? { ...state, items: [...fresh, ...state.items] } : state;
    }
  }
}

function pagePath(cursor: string | null): string {
  const params = new URLSearchParams({ limit: String(GALLERY_PAGE_SIZE) });
  if (cursor) params.set('cursor', cursor);
  return `/api/v1/images?${params.toString()}`;
}

/**
 * My images, newest first: an infinite scroll over the cursor API. The next page loads when the end
 * of the grid comes near (IntersectionObserver) or with the "Load more" button, which keyboard and
 * screen-reader users reach in the normal tab order. Auto-loading stops after an error until the
 * user retries, so a failing server is not hammered.
 */
export default function GalleryPage() {
  const { user } = useAuth();
  const owner = user?.user.id ?? '';
  const kept = readGallery(owner);
  const [state, dispatch] = useReducer(reducer, {
    items: kept?.items ?? [],
    nextCursor: kept?.nextCursor ?? null,
    loaded: kept?.loaded ?? false,
    loading: false,
    error: null,
  });
  const busy = useRef(false);
  const sentinel = useRef<HTMLDivElement>(null);
  const hasMore = !state.loaded || state.nextCursor !== null;

  const loadMore = useCallback(
    async (cursor: string | null, shown: number) => {
      if (busy.current) return;
      busy.current = true;
      dispatch({ type: 'start' });
      try {
        const page = await api<Page>(pagePath(cursor));
        dispatch({ type: 'page', page });
        if (cursor !== null) {
          const n = page.items.length;
          announce(`${n} more image${n === 1 ? '' : 's'} loaded, ${shown + n} shown.`);
        }
      } catch (error) {
        dispatch({ type: 'failed', error });
      } finally {
        busy.current = false;
      }
    },
    [],
  );

  // First page (unless we came back to a gallery already loaded).
  useEffect(() => {
    if (!state.loaded && !busy.current && state.error === null) void loadMore(null, 0);
  }, [state.loaded, state.error, loadMore]);

  // A kept gallery may miss images made since (in the studio, the editor or another tab).
  const keptOnMount = useRef(kept?.loaded ?? false);
  useEffect(() => {
    if (!keptOnMount.current) return;
    const controller = new AbortController();
    api<Page>(pagePath(null), { signal: controller.signal }).then(
      (page) => dispatch({ type: 'head', page }),
      () => undefined, // the kept list stays usable; the next page load reports any real problem
    );
    return () => controller.abort();
  }, []);

  // Keep what is loaded, and where we were, for when the user comes back.
  useEffect(() => {
    if (!owner) return;
    saveGallery({ owner, items: state.items, nextCursor: state.nextCursor, loaded: state.loaded, scrollY: window.scrollY });
  }, [owner, state.items, state.nextCursor, state.loaded]);
  useEffect(() => {
    const remember = () => {
      const current = readGallery(owner);
      if (current) saveGallery({ ...current, scrollY: window.scrollY });
    };
    window.addEventListener('scroll', remember, { passive: true });
    return () => window.removeEventListener('scroll', remember);
  }, [owner]);

  // Back at a gallery we had scrolled: return to the same place (after the shell's focus move).
  const restoreTo = useRef(kept?.scrollY ?? 0);
  useLayoutEffect(() => {
    const y = restoreTo.current;
    if (y <= 0) return;
    window.scrollTo(0, y);
    const frame = requestAnimationFrame(() => window.scrollTo(0, y));
    return () => cancelAnimationFrame(frame);
  }, []);

  // Infinite scroll: load the next page when the end of the grid is within a screen of the viewport.
  const canAutoLoad = state.loaded && state.nextCursor !== null && !state.loading && state.error === null;
  useEffect(() => {
    const element = sentinel.current;
    if (!canAutoLoad || !element || typeof IntersectionObserver === 'undefined') return;
    const observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((entry) => entry.isIntersecting)) void loadMore(state.nextCursor, state.items.length);
      },
      { rootMargin: '0px 0px 800px 0px' },
    );
    observer.observe(element);
    return () => observer.disconnect();
  }, [canAutoLoad, loadMore, state.nextCursor, state.items.length]);

  const retry = () => void loadMore(state.loaded ? state.nextCursor : null, state.items.length);
  const count = state.items.length;

  return (
    <div className="gallery">
      <PageHeader title="Gallery">
        <p className="gallery-summary" aria-live="off">
          {state.loaded && count > 0
            ? `${count} image${count === 1 ? '' : 's'}${state.nextCursor ? ' shown, more below' : ''}`
            : null}
        </p>
      </PageHeader>

      {!state.loaded && state.loading && <Spinner label="Loading your images" />}

      {state.loaded && count === 0 && !state.loading && (
        <div className="gallery-empty">
          <h2>No images yet</h2>
          <p>Images you generate or edit appear here, newest first.</p>
          <Link className="btn btn-primary" to="/images">
            Create an image
          </Link>
        </div>
      )}

      {count > 0 && (
        <ul className="gallery-grid" aria-label="My images, newest first">
          {state.items.map((image) => (
            <li key={image.id}>
              <Link to={`/gallery/${encodeURIComponent(image.id)}`} className="gallery-tile">
                <Thumbnail
                  src={image.thumbnail_url}
                  alt={imageLabel(image)}
                  width={THUMBNAIL_SIZE}
                  height={THUMBNAIL_SIZE}
                />
                <span className="gallery-tile-caption">
                  <span>{modeLabel(image.mode)}</span>
                  <span>
                    {image.width}×{image.height}
                  </span>
                  <time dateTime={image.created_at}>{formatDate(image.created_at)}</time>
                </span>
              </Link>
            </li>
          ))}
        </ul>
      )}

      <ErrorMessage error={state.error} className="gallery-error" />

      <div ref={sentinel} className="gallery-footer">
        {state.error !== null ? (
          <Button variant="primary" onClick={retry}>
            Try again
          </Button>
        ) : state.loaded && hasMore ? (
          <Button onClick={() => void loadMore(state.nextCursor, count)} busy={state.loading}>
            {state.loading ? 'Loading more images' : 'Load more images'}
          </Button>
        ) : state.loaded && count > 0 ? (
          <p className="gallery-end">That is all of your images.</p>
        ) : null}
      </div>
    </div>
  );
}
