import { ApiError } from '../../api/client';
import { Alert, ErrorMessage } from '../../components/ErrorMessage';
import { formatDuration, formatReset } from '../../components/format';

/** Why the Generate button's request was refused, next to the button. */
export function SubmitError({ error, queued, total }: { error: unknown; queued: number; total: number }) {
  const partial = queued > 0 ? `${queued} of ${total} images were queued; the rest were not.` : null;
  if (error instanceof ApiError && error.code === 'quota_exceeded') {
    const { used, limit, resets_at: resetsAt } = error.details as { used?: number; limit?: number; resets_at?: string };
    return (
      <Alert tone="error" title="You have reached today's image limit." className="submit-error">
        {partial && <p>{partial}</p>}
        <p>
          {used !== undefined && limit !== undefined ? `${used} of ${limit} images used today. ` : ''}
          {resetsAt ? `The limit resets at ${formatReset(resetsAt)}.` : error.message}
        </p>
        <p className="muted">A higher tier raises the daily limit; ask your administrator.</p>
      </Alert>
    );
  }
  if (error instanceof ApiError && error.code === 'rate_limited') {
    const wait = error.retryAfterSeconds;
    return (
      <Alert tone="error" title="Too many requests." className="submit-error">
        {partial && <p>{partial}</p>}
        <p>{wait !== null ? `Try again in ${formatDuration(wait)}.` : error.message}</p>
      </Alert>
    );
  }
  return (
    <div className="submit-error">
      {partial && (
        <Alert tone="warning" urgent={false}>
          <p>{partial}</p>
        </Alert>
      )}
      <ErrorMessage error={error} />
    </div>
  );
}
