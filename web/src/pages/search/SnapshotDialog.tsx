import { useEffect, useId, useRef, useState } from 'react';
import { api } from '../../api/client';
import { Button } from '../../components/Button';
import { ErrorMessage } from '../../components/ErrorMessage';
import { formatDateTime } from '../../components/format';
import { Spinner } from '../../components/Spinner';
import type { Snapshot } from './types';

type Load = { status: 'loading' } | { status: 'failed'; error: unknown } | { status: 'ready'; snapshot: Snapshot };

/**
 * The stored snapshot of a result (the text as crawled), so a citation can be checked after the page
 * changed. Fetched through the API with the session (a plain link would lack the token) and shown as
 * text in a modal <dialog>; focus returns to the button that opened it.
 */
export function SnapshotDialog({ snapshotId, onClose }: { snapshotId: string; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const [load, setLoad] = useState<Load>({ status: 'loading' });

  useEffect(() => {
    const dialog = ref.current;
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    if (dialog && !dialog.open) {
      if (typeof dialog.showModal === 'function') dialog.showModal();
      else dialog.setAttribute('open', '');
    }
    return () => opener?.focus();
  }, []);

  useEffect(() => {
    const controller = new AbortController();
    api<Snapshot>(`/api/v1/search/snapshots/${encodeURIComponent(snapshotId)}`, { signal: controller.signal }).then(
      (snapshot) => setLoad({ status: 'ready', snapshot }),
      (error: unknown) => {
        if (!controller.signal.aborted) setLoad({ status: 'failed', error });
      },
    );
    return () => controller.abort();
  }, [snapshotId]);

  const snapshot = load.status === 'ready' ? load.snapshot : null;
  const fetched = snapshot?.fetched_at ?? snapshot?.retrieved_at;
  return (
    <dialog
      ref={ref}
      className="dialog snapshot-dialog"
      aria-labelledby={titleId}
      onCancel={(event) => {
        event.preventDefault();
        onClose();
      }}
    >
      <h2 id={titleId}>Snapshot{snapshot?.title ? `: ${snapshot.title}` : ''}</h2>
      {load.status === 'loading' && <Spinner label="Loading the snapshot" />}
      {load.status === 'failed' && <ErrorMessage error={load.error} />}
      {snapshot && (
        <>
          <p className="snapshot-meta">
            {snapshot.url && <span className="snapshot-url">{snapshot.url}</span>}
            {fetched && (
              <span>
                Crawled <time dateTime={fetched}>{formatDateTime(fetched)}</time>
              </span>
            )}
          </p>
          {/* Long text scrolls inside the dialog: focusable so the keyboard can scroll it (axe scrollable-region-focusable). */}
          <div className="snapshot-text" tabIndex={0} role="region" aria-label="Snapshot text">
            {snapshot.text?.trim() ? snapshot.text : 'This snapshot has no text.'}
          </div>
        </>
      )}
      <div className="dialog-actions">
        <Button variant="primary" onClick={onClose}>
          Close
        </Button>
      </div>
    </dialog>
  );
}
