import { useEffect, useState } from 'react';
import { Link } from 'react-router';
import { fetchAuthorized } from '../../api/fetchAuthorized';

/** An image from the image API (needs the bearer token, so it is fetched and shown via an object URL). */
export function ChatImage({ imageId, alt }: { imageId: string; alt: string }) {
  const [url, setUrl] = useState<string | null>(null);
  const [failed, setFailed] = useState(false);

  useEffect(() => {
    const controller = new AbortController();
    let objectUrl: string | null = null;
    fetchAuthorized(`/api/v1/images/${encodeURIComponent(imageId)}/file`, { signal: controller.signal })
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
  }, [imageId]);

  return (
    <figure className="chat-image">
      {url ? (
        <img src={url} alt={alt} />
      ) : (
        <span className="chat-image-placeholder" role="img" aria-label={alt}>
          {failed ? 'Image unavailable' : 'Loading image…'}
        </span>
      )}
      <figcaption>
        <Link to={`/gallery/${encodeURIComponent(imageId)}`}>Open in gallery</Link>
      </figcaption>
    </figure>
  );
}
