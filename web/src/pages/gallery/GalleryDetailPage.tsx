import { useEffect, useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { api, ApiError } from '../../api/client';
import { announce } from '../../components/announce';
import { Button } from '../../components/Button';
import { ConfirmDialog } from '../../components/ConfirmDialog';
import { ErrorMessage } from '../../components/ErrorMessage';
import { PageHeader } from '../../components/PageHeader';
import { Spinner } from '../../components/Spinner';
import { Thumbnail } from './AuthorizedImage';
import { neighbours, removeFromSnapshot } from './galleryStore';
import { downloadImage, fetchImageBlob, forgetThumbnail, type DownloadFormat } from './imageFiles';
import { describeImage, imageLabel } from './metadata';
import type { GalleryImage } from './types';
import './gallery.css';

type Load = { status: 'loading' } | { status: 'failed'; error: unknown } | { status: 'ready'; image: GalleryImage };

/** The full image: the cached thumbnail first (blurred, same box), then the original once fetched. */
function FullImage({ image, alt }: { image: GalleryImage; alt: string }) {
  const [url, setUrl] = useState<string | null>(null);
  const [failed, setFailed] = useState<unknown>(null);

  useEffect(() => {
    const controller = new AbortController();
    let objectUrl: string | null = null;
    setUrl(null);
    setFailed(null);
    fetchImageBlob(image.url, controller.signal).then(
      (blob) => {
        objectUrl = URL.createObjectURL(blob);
        setUrl(objectUrl);
      },
      (error: unknown) => {
        if (!controller.signal.aborted) setFailed(error);
      },
    );
    return () => {
      controller.abort();
      if (objectUrl) URL.revokeObjectURL(objectUrl);
    };
  }, [image.url]);

  return (
    <figure className="gallery-figure">
      {url ? (
        <img src={url} alt={alt} width={image.width} height={image.height} />
      ) : (
        <Thumbnail
          src={image.thumbnail_url}
          alt={alt}
          width={image.width}
          height={image.height}
          lazy={false}
          className="gallery-full-loading"
        />
      )}
      <figcaption>
        {image.width} × {image.height} px{url ? '' : failed ? '' : ' · loading full size…'}
      </figcaption>
      <ErrorMessage error={failed} />
    </figure>
  );
}

/**
 * One image: the picture, every parameter it was made with, and what to do with it next
 * (regenerate in the studio, open in the editor, download as PNG or WebP, delete after a confirm).
 */
export default function GalleryDetailPage() {
  const { id = '' } = useParams();
  const navigate = useNavigate();
  const [load, setLoad] = useState<Load>({ status: 'loading' });
  const [confirming, setConfirming] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [actionError, setActionError] = useState<unknown>(null);
  const [downloading, setDownloading] = useState<DownloadFormat | null>(null);

  useEffect(() => {
    const controller = new AbortController();
    setLoad({ status: 'loading' });
    setActionError(null);
    api<GalleryImage>(`/api/v1/images/${encodeURIComponent(id)}`, { signal: controller.signal }).then(
      (image) => setLoad({ status: 'ready', image }),
      (error: unknown) => {
        if (!controller.signal.aborted) setLoad({ status: 'failed', error });
      },
    );
    return () => controller.abort();
  }, [id]);

  // ← and → step to the newer and older image (not while typing or in the confirm dialog).
  const loadedId = load.status === 'ready' ? load.image.id : null;
  useEffect(() => {
    if (!loadedId) return;
    const onKey = (event: KeyboardEvent) => {
      if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
      if (event.key !== 'ArrowLeft' && event.key !== 'ArrowRight') return;
      const target = event.target as HTMLElement | null;
      if (target?.closest('input, textarea, select, [contenteditable], dialog[open]')) return;
      const { previous, next } = neighbours(loadedId);
      const to = event.key === 'ArrowLeft' ? previous : next;
      if (!to) return;
      event.preventDefault();
      navigate(`/gallery/${encodeURIComponent(to.id)}`);
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [loadedId, navigate]);

  if (load.status === 'loading') {
    return (
      <>
        <PageHeader title="Image" />
        <Spinner label="Loading the image" />
      </>
    );
  }

  if (load.status === 'failed') {
    const missing = load.error instanceof ApiError && (load.error.status === 404 || load.error.status === 422);
    return (
      <>
        <PageHeader title={missing ? 'Image not found' : 'Image'} />
        {missing ? (
          <p>This image does not exist or was deleted.</p>
        ) : (
          <ErrorMessage error={load.error} />
        )}
        <p>
          <Link to="/gallery">Back to the gallery</Link>
        </p>
      </>
    );
  }

  const { image } = load;
  const { prompt, negativePrompt, rows } = describeImage(image);
  const label = imageLabel(image);
  const { previous, next } = neighbours(image.id);
  // The Clipboard API exists only in secure contexts (https, localhost).
  const canCopy = typeof navigator !== 'undefined' && Boolean(navigator.clipboard);

  const download = async (format: DownloadFormat) => {
    setDownloading(format);
    setActionError(null);
    try {
      await downloadImage(image.url, image.id, format);
      announce(`Download of the ${format.toUpperCase()} file started.`);
    } catch (error) {
      setActionError(error);
    } finally {
      setDownloading(null);
    }
  };

  const copyPrompt = async (text: string) => {
    try {
      await navigator.clipboard.writeText(text);
      announce('Prompt copied.');
    } catch {
      setActionError(new Error('The browser did not allow copying. Select the prompt and copy it by hand.'));
    }
  };

  const remove = async () => {
    setDeleting(true);
    setActionError(null);
    try {
      await api<void>(`/api/v1/images/${encodeURIComponent(image.id)}`, { method: 'DELETE' });
      removeFromSnapshot(image.id);
      forgetThumbnail(image.thumbnail_url);
      announce('Image deleted.');
      navigate('/gallery', { replace: true });
    } catch (error) {
      setConfirming(false);
      setDeleting(false);
      if (error instanceof ApiError && error.status === 404) {
        // Already gone (deleted in another tab): the result the user wanted.
        removeFromSnapshot(image.id);
        navigate('/gallery', { replace: true });
        return;
      }
      setActionError(error);
    }
  };

  return (
    <>
      <nav className="gallery-detail-nav" aria-label="Gallery">
        <Link to="/gallery">← All images</Link>
        <span className="spacer" />
        {previous && (
          <Link to={`/gallery/${encodeURIComponent(previous.id)}`} rel="prev" aria-keyshortcuts="ArrowLeft">
            ← Newer image
          </Link>
        )}
        {next && (
          <Link to={`/gallery/${encodeURIComponent(next.id)}`} rel="next" aria-keyshortcuts="ArrowRight">
            Older image →
          </Link>
        )}
      </nav>
      <PageHeader title="Image details" />
      <div className="gallery-detail">
        <FullImage key={image.id} image={image} alt={label} />
        <section aria-labelledby="image-actions-heading">
          <h2 id="image-actions-heading" className="visually-hidden">
            Actions
          </h2>
          <div className="gallery-actions">
            <Link className="btn btn-primary" to={`/images?from=${encodeURIComponent(image.id)}`}>
              Regenerate
            </Link>
            <Link className="btn btn-secondary" to={`/images/edit?image=${encodeURIComponent(image.id)}`}>
              Open in editor
            </Link>
            <Link className="btn btn-secondary" to={`/chat?image=${encodeURIComponent(image.id)}`}>
              Share to chat
            </Link>
            <Button onClick={() => void download('png')} busy={downloading === 'png'}>
              Download PNG
            </Button>
            <Button onClick={() => void download('webp')} busy={downloading === 'webp'}>
              Download WebP
            </Button>
            <Button variant="danger" onClick={() => setConfirming(true)}>
              Delete
            </Button>
          </div>
          <ErrorMessage error={actionError} />

          <div className="gallery-prompt-heading">
            <h2>Prompt</h2>
            {prompt && canCopy && (
              <Button size="small" variant="ghost" onClick={() => void copyPrompt(prompt)}>
                Copy prompt
              </Button>
            )}
          </div>
          <p className={prompt ? 'gallery-prompt' : 'gallery-prompt gallery-prompt-empty'}>{prompt || 'No prompt'}</p>
          <h2>Negative prompt</h2>
          <p className={negativePrompt ? 'gallery-prompt' : 'gallery-prompt gallery-prompt-empty'}>
            {negativePrompt || 'None'}
          </p>
          <h2>Parameters</h2>
          <dl className="gallery-meta">
            {rows.map((row) => (
              <div key={row.label} className="gallery-meta-row">
                <dt>{row.label}</dt>
                <dd>{row.value}</dd>
              </div>
            ))}
          </dl>
        </section>
      </div>
      <ConfirmDialog
        open={confirming}
        title="Delete this image?"
        confirmLabel="Delete image"
        danger
        busy={deleting}
        onConfirm={() => void remove()}
        onCancel={() => setConfirming(false)}
      >
        <p>The image and its files are removed for good. This cannot be undone.</p>
      </ConfirmDialog>
    </>
  );
}
