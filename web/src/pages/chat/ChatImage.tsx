import { useEffect, useState, type ReactNode } from 'react';
import { Link } from 'react-router';
import { fetchAuthorized } from '../../api/fetchAuthorized';

/** An image from an API path that needs the bearer token, so it is fetched and shown via an object URL. */
function AuthorizedImage({ path, alt, caption, small }: { path: string; alt: string; caption?: ReactNode; small?: boolean }) {
  const [url, setUrl] = useState<string | null>(null);
  const [failed, setFailed] = useState(false);

  useEffect(() => {
    const controller = new AbortController();
    let objectUrl: string | null = null;
    fetchAuthorized(path, { signal: controller.signal })
      .then((response) => response.blob())
      .then((blob) => {
        objectUrl = URL.createObjectURL(blob);
        setUrl(objectUrl);
      })
      .catch((error: unknown) => {
        if (!(error instanceof DOMException && error.name === 'AbortError')) setFailed(true);
      });
    return () => {
      controller.abort();
      if (objectUrl) URL.revokeObjectURL(objectUrl);
    };
  }, [path]);

  return (
    <figure className={small ? 'chat-image chat-image-small' : 'chat-image'}>
      {url ? (
        <img src={url} alt={alt} />
      ) : (
        <span className="chat-image-placeholder" role="img" aria-label={alt}>
          {failed ? 'Image unavailable' : 'Loading image…'}
        </span>
      )}
      {caption && <figcaption>{caption}</figcaption>}
    </figure>
  );
}

/** An image the image engine made (in the user's gallery). */
export function ChatImage({ imageId, alt }: { imageId: string; alt: string }) {
  return (
    <AuthorizedImage
      path={`/api/v1/images/${encodeURIComponent(imageId)}/file`}
      alt={alt}
      caption={<Link to={`/gallery/${encodeURIComponent(imageId)}`}>Open in gallery</Link>}
    />
  );
}

/** An image the user attached to a message, as it was sent to the model. */
export function AttachedImage({ attachmentId, filename }: { attachmentId: string; filename: string }) {
  return (
    <AuthorizedImage
      path={`/api/v1/chat/attachments/${encodeURIComponent(attachmentId)}/file`}
      alt={`Attached image ${filename}`}
      caption={filename}
      small
    />
  );
}
