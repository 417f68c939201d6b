import type { ReactNode } from 'react';
import { ApiError } from '../api/client';
import { formatDuration } from './format';

/** A human sentence for an API failure; the server's own message is kept as the detail. */
export function describeError(error: unknown): { title: string; detail: string | null } {
  if (!(error instanceof ApiError)) {
    return { title: 'Something went wrong.', detail: error instanceof Error ? error.message : null };
  }
  const retry = error.retryAfterSeconds;
  const wait = retry !== null ? ` Try again in ${formatDuration(retry)}.` : ' Try again later.';
  switch (error.code) {
    case 'rate_limited':
      return { title: `Too many requests.${wait}`, detail: error.message };
    case 'quota_exceeded':
      return { title: `You have reached today's limit.${wait}`, detail: error.message };
    case 'nsfw_content_blocked':
      return { title: 'Blocked by the safety filter. Change the prompt or the image and try again.', detail: error.message };
    case 'payload_too_large':
      return { title: 'The file is too large.', detail: error.message };
    case 'unsupported_media_type':
      return { title: 'This file type is not supported.', detail: error.message };
    case 'network_error':
      return { title: error.message, detail: null };
    case 'not_authenticated':
    case 'invalid_token':
      return { title: 'Your session has ended. Sign in again.', detail: null };
    default:
      return { title: error.message, detail: null };
  }
}

interface AlertProps {
  tone?: 'error' | 'warning' | 'info' | 'success';
  title?: ReactNode;
  children?: ReactNode;
  /** role=alert interrupts the screen reader: use for errors that block the task (default for errors). */
  urgent?: boolean;
  className?: string;
  id?: string;
}

export function Alert({ tone = 'info', title, children, urgent, className, id }: AlertProps) {
  const role = (urgent ?? tone === 'error') ? 'alert' : 'status';
  return (
    <div id={id} className={['alert', `alert-${tone}`, className ?? ''].filter(Boolean).join(' ')} role={role}>
      {title && <p className="alert-title">{title}</p>}
      {children && <div className="alert-body">{children}</div>}
    </div>
  );
}

/** Renders an ApiError (or any error) next to what caused it; nothing when `error` is null. */
export function ErrorMessage({ error, id, className }: { error: unknown; id?: string; className?: string }) {
  if (error === null || error === undefined) return null;
  const { title, detail } = describeError(error);
  return (
    <Alert tone="error" title={title} id={id} className={className}>
      {detail && detail !== title ? <p>{detail}</p> : null}
    </Alert>
  );
}
