import { memo, useState } from 'react';
import { Link } from 'react-router';
import { ApiError } from '../../api/client';
import { Button } from '../../components/Button';
import { Alert, describeError, ErrorMessage } from '../../components/ErrorMessage';
import { formatDuration } from '../../components/format';
import { progressPercent, type QueueJob } from '../../queue/queueState';
import { Thumbnail } from '../gallery/AuthorizedImage';
import { downloadImage, type DownloadFormat } from '../gallery/imageFiles';

export interface JobCardActions {
  cancel: (job: QueueJob) => Promise<void>;
  regenerate: (job: QueueJob) => Promise<void>;
  reuse: (imageId: string) => void;
  vary: (imageId: string) => void;
  dismiss: (job: QueueJob) => void;
}

const STATUS_TEXT: Record<QueueJob['status'], string> = {
  submitting: 'Sending…',
  queued: 'Waiting',
  running: 'Generating',
  completed: 'Done',
  failed: 'Failed',
  cancelled: 'Cancelled',
};

function describe(job: QueueJob): string | null {
  const request = job.request;
  if (!request) return null;
  const body = request.body;
  const size = request.kind === 'generate' ? `${request.body.width}×${request.body.height}` : 'image-to-image';
  const seed = body.seed !== undefined ? `seed ${body.seed}` : 'random seed';
  return `${size} · ${body.steps} steps · guidance ${body.guidance_scale} · ${seed}${body.style_preset ? ` · ${body.style_preset}` : ''}`;
}

/** Why a job failed; not role=alert: the live region already announced it. */
function JobFailure({ code, message }: { code: string; message: string }) {
  const { title, detail } = describeError(new ApiError(0, code, message));
  return (
    <Alert tone="error" title={title} urgent={false} className="job-error">
      {detail && detail !== title ? <p>{detail}</p> : null}
    </Alert>
  );
}

/** Only a hidden suffix: visible text stays short, the accessible name says which job. */
function JobName({ job }: { job: QueueJob }) {
  return <span className="visually-hidden"> job {job.label}</span>;
}

/** One job: its place, live progress and latent preview; when done its images and actions. */
export const JobCard = memo(function JobCard({ job, actions }: { job: QueueJob; actions: JobCardActions }) {
  const [actionError, setActionError] = useState<unknown>(null);
  const [busy, setBusy] = useState<'cancel' | 'regenerate' | null>(null);
  const percent = progressPercent(job);
  const headingId = `job-${job.key}-title`;
  const active = job.status === 'submitting' || job.status === 'queued' || job.status === 'running';

  const run = async (kind: 'cancel' | 'regenerate', action: () => Promise<void>) => {
    setBusy(kind);
    setActionError(null);
    try {
      await action();
    } catch (error) {
      setActionError(error);
    } finally {
      setBusy(null);
    }
  };

  const download = (imageId: string, format: DownloadFormat) => {
    setActionError(null);
    downloadImage(`/api/v1/images/${encodeURIComponent(imageId)}/file`, imageId, format).catch(setActionError);
  };

  let progressText = '';
  if (job.status === 'queued') progressText = job.position !== null ? `Position ${job.position} in the queue` : 'In the queue';
  else if (job.status === 'running') {
    progressText = job.total > 0 ? `Step ${job.step} of ${job.total}` : 'Starting…';
    if (job.etaSeconds !== null && job.total > 0) progressText += `, about ${formatDuration(job.etaSeconds)} left`;
  } else if (job.status === 'completed') progressText = job.cached ? 'Served from the cache' : `${job.total || job.step} steps`;

  return (
    <li className={`job job-${job.status}`} data-job-id={job.id ?? undefined}>
      <div className="job-head">
        <h3 id={headingId} className="job-title">
          Job {job.label}
        </h3>
        <span className={`job-status status-${job.status}`}>{STATUS_TEXT[job.status]}</span>
      </div>
      {job.request && (
        <p className="job-prompt" title={job.request.body.prompt}>
          {job.request.body.prompt}
        </p>
      )}
      {describe(job) && <p className="job-params muted">{describe(job)}</p>}

      {(active || job.status === 'completed') && (
        <div className="job-progress">
          {/* Always determinate (0 while waiting): an indeterminate bar animates on every frame, and
              seven waiting jobs would repaint the panel continuously. */}
          <progress max={100} value={percent} aria-label={`Job ${job.label} progress`} aria-valuetext={progressText || STATUS_TEXT[job.status]} />
          <span className="job-progress-text">{progressText}</span>
        </div>
      )}

      {job.status === 'running' && job.preview && (
        <img
          className="job-preview"
          src={job.preview}
          alt={`Latent preview of job ${job.label} at step ${job.step} of ${job.total}`}
          width={128}
          height={128}
          decoding="async"
        />
      )}

      {job.status === 'failed' && job.error && (
        <JobFailure code={job.error.code} message={job.error.message} />
      )}

      {job.status === 'completed' && job.imageIds.length > 0 && (
        <ul className="job-results">
          {job.imageIds.map((imageId, index) => (
            <li key={imageId} className="job-result">
              <Link to={`/gallery/${imageId}`} className="job-result-link">
                <Thumbnail
                  src={`/api/v1/images/${encodeURIComponent(imageId)}/file?variant=thumbnail`}
                  alt={`Result ${index + 1} of job ${job.label}${job.request ? `: ${job.request.body.prompt}` : ''}`}
                  width={128}
                  height={128}
                  lazy={false}
                />
              </Link>
              <div className="button-row job-actions">
                <Button size="small" onClick={() => download(imageId, 'png')}>
                  PNG<span className="visually-hidden"> download of job {job.label}</span>
                </Button>
                <Button size="small" onClick={() => download(imageId, 'webp')}>
                  WebP<span className="visually-hidden"> download of job {job.label}</span>
                </Button>
                <Button size="small" onClick={() => actions.reuse(imageId)}>
                  Use settings<JobName job={job} />
                </Button>
                <Button size="small" onClick={() => actions.vary(imageId)}>
                  Vary<JobName job={job} />
                </Button>
                <Link className="btn btn-small btn-secondary" to={`/images/edit?image=${encodeURIComponent(imageId)}`}>
                  Edit<JobName job={job} />
                </Link>
                <Link className="btn btn-small btn-secondary" to={`/chat?image=${encodeURIComponent(imageId)}`}>
                  Share to chat<JobName job={job} />
                </Link>
              </div>
            </li>
          ))}
        </ul>
      )}

      <div className="button-row job-controls">
        {active && (
          <Button
            size="small"
            variant="danger"
            busy={busy === 'cancel' || job.cancelRequested}
            disabled={job.id === null}
            onClick={() => void run('cancel', () => actions.cancel(job))}
          >
            {job.cancelRequested ? 'Cancelling' : 'Cancel'}
            <JobName job={job} />
          </Button>
        )}
        {!active && job.request && (
          <Button size="small" busy={busy === 'regenerate'} onClick={() => void run('regenerate', () => actions.regenerate(job))}>
            Regenerate<JobName job={job} />
          </Button>
        )}
        {!active && (
          <Button size="small" variant="ghost" onClick={() => actions.dismiss(job)}>
            Remove<JobName job={job} />
          </Button>
        )}
      </div>
      {actionError !== null && <ErrorMessage error={actionError} className="job-error" />}
    </li>
  );
});
