import { Button } from '../../components/Button';
import { formatDuration } from '../../components/format';
import type { JobState } from './useEditJob';

/** The running job: queue position, a progress bar, the latent preview, and Cancel. */
export function JobProgress({ state, onCancel }: { state: JobState; onCancel: () => void }) {
  if (state.phase !== 'queued' && state.phase !== 'running' && state.phase !== 'submitting') return null;
  let text = 'Sending…';
  let value: number | undefined;
  let max: number | undefined;
  if (state.phase === 'queued') text = state.position ? `Queued: position ${state.position}` : 'Queued';
  if (state.phase === 'running') {
    if (state.total > 0) {
      value = state.step;
      max = state.total;
      const eta = state.etaSeconds !== null && state.step < state.total ? ` · about ${formatDuration(Math.ceil(state.etaSeconds))} left` : '';
      text = `Step ${state.step} of ${state.total}${state.stage ? ` (${state.stage})` : ''}${eta}`;
    } else text = 'Starting…';
  }
  return (
    <section className="job-progress card" aria-label="Progress">
      <progress value={value} max={max} aria-label="Job progress" aria-valuetext={text} />
      <p className="job-progress-text">{text}</p>
      {state.phase === 'running' && state.preview && (
        <img className="job-preview" src={`data:image/jpeg;base64,${state.preview}`} alt="Live preview of the result (rough)" />
      )}
      {state.phase !== 'submitting' && (
        <Button onClick={onCancel} variant="secondary">
          Cancel
        </Button>
      )}
    </section>
  );
}
