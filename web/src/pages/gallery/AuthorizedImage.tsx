import { useEffect, useRef, useState } from 'react';
import { thumbnailObjectUrl } from './imageFiles';

interface ThumbnailProps {
  src: string;
  alt: string;
  width: number;
  height: number;
  className?: string;
  /** Start fetching only when within this margin of the viewport (lazy loading). */
  lazy?: boolean;
}

type State = { status: 'idle' | 'loading' | 'failed' } | { status: 'ready'; url: string };

/**
 * A thumbnail from the API: fetched with the session's token when it comes near the viewport, shown
 * through a cached object URL. `width`/`height` are always set, so the grid never shifts while
 * images arrive; a failed fetch shows its alt text and "Image unavailable".
 */
export function Thumbnail({ src, alt, width, height, className, lazy = true }: ThumbnailProps) {
  const ref = useRef<HTMLSpanElement>(null);
  const [state, setState] = useState<State>({ status: 'idle' });
  const [visible, setVisible] = useState(!lazy);

  useEffect(() => {
    if (visible) return;
    const element = ref.current;
    if (!element || typeof IntersectionObserver === 'undefined') {
      setVisible(true);
      return;
    }
    const observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((entry) => entry.isIntersecting)) setVisible(true);
      },
      { rootMargin: '600px 0px' },
    );
    observer.observe(element);
    return () => observer.disconnect();
  }, [visible]);

  useEffect(() => {
    if (!visible) return;
    let cancelled = false;
    setState({ status: 'loading' });
    thumbnailObjectUrl(src).then(
      (url) => !cancelled && setState({ status: 'ready', url }),
      // Not retried in a loop: a missing file would be asked for again and again. Reopening the
      // gallery (a new mount) tries again; the cache never keeps a failure.
      () => !cancelled && setState({ status: 'failed' }),
    );
    return () => {
      cancelled = true;
    };
  }, [src, visible]);

  return (
    <span ref={ref} className={['thumb', `thumb-${state.status}`, className ?? ''].filter(Boolean).join(' ')}>
      {state.status === 'ready' ? (
        <img src={state.url} alt={alt} width={width} height={height} decoding="async" />
      ) : (
        // Same box as the image; the name stays available while loading or after a failure.
        <span className="thumb-placeholder" role="img" aria-label={alt} style={{ aspectRatio: `${width} / ${height}` }}>
          {state.status === 'failed' ? <span className="thumb-failed" aria-hidden="true">Image unavailable</span> : null}
        </span>
      )}
    </span>
  );
}
