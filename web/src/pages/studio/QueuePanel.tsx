import { memo } from 'react';
import { Button } from '../../components/Button';
import { summarize } from '../../queue/queueState';
import { useQueue } from '../../queue/queueStore';
import { JobCard, type JobCardActions } from './JobCard';

/**
 * Every job of this session, newest first. Changes are announced by the queue store. The only
 * component that subscribes to the queue: live events re-render this panel (and of its cards only
 * those whose job changed), never the form beside it.
 */
export const QueuePanel = memo(function QueuePanel({ actions, onClearFinished }: { actions: JobCardActions; onClearFinished: () => void }) {
  const queue = useQueue();
  const summary = summarize(queue);
  const finished = summary.completed + summary.failed + summary.cancelled;
  const parts = [
    summary.running ? `${summary.running} generating` : null,
    summary.waiting ? `${summary.waiting} waiting` : null,
    summary.completed ? `${summary.completed} done` : null,
    summary.failed ? `${summary.failed} failed` : null,
    summary.cancelled ? `${summary.cancelled} cancelled` : null,
  ].filter(Boolean);
  return (
    <section className="queue card" aria-labelledby="queue-title">
      <div className="queue-head">
        <h2 id="queue-title">Queue</h2>
        {finished > 0 && (
          <Button size="small" variant="ghost" onClick={onClearFinished}>
            Clear finished
          </Button>
        )}
      </div>
      <p className="queue-summary muted">{parts.length ? parts.join(' · ') : 'Nothing queued yet. Your jobs appear here with live previews.'}</p>
      {queue.jobs.length > 0 && (
        <ol className="job-list" aria-label="Jobs, newest first">
          {queue.jobs.map((job) => (
            <JobCard key={job.key} job={job} actions={actions} />
          ))}
        </ol>
      )}
    </section>
  );
});
