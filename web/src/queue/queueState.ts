// The job queue as the studio shows it: a pure reducer over submissions, WebSocket events and
// polled job lists. No I/O here, so every transition is unit-tested (queueState.test.ts).

import type { JobEventMessage, JobRequest, JobStatus, JobView } from './types';

/** `submitting` exists only on the client: the POST is on its way and there is no job id yet. */
export type QueueStatus = 'submitting' | JobStatus;

export interface QueueJob {
  /** Stable client key (the job id is unknown until the server answers). */
  key: string;
  id: string | null;
  /** "Job 3": a short ordinal for labels and announcements, unique in this session. */
  label: number;
  request: JobRequest | null;
  status: QueueStatus;
  position: number | null;
  step: number;
  total: number;
  stage: string | null;
  etaSeconds: number | null;
  /** data: URL of the latest latent preview JPEG. */
  preview: string | null;
  imageIds: string[];
  error: { code: string; message: string } | null;
  cached: boolean;
  cancelRequested: boolean;
}

export interface QueueState {
  jobs: QueueJob[];
  nextLabel: number;
}

export type QueueAction =
  | { type: 'submitting'; key: string; request: JobRequest }
  | { type: 'submitted'; key: string; job: JobView }
  | { type: 'submitFailed'; key: string }
  | { type: 'events'; events: JobEventMessage[] }
  | { type: 'jobsPolled'; jobs: JobView[] }
  | { type: 'restored'; jobs: JobView[] }
  | { type: 'cancelRequested'; key: string }
  | { type: 'cancelFailed'; key: string }
  | { type: 'dismiss'; key: string }
  | { type: 'clearFinished' }
  | { type: 'reset' };

export const initialQueueState: QueueState = { jobs: [], nextLabel: 1 };

const TERMINAL: ReadonlySet<QueueStatus> = new Set(['completed', 'failed', 'cancelled']);
// How far along each status is: a late or replayed event never moves a job backwards.
const RANK: Record<QueueStatus, number> = {
  submitting: 0,
  queued: 1,
  running: 2,
  completed: 3,
  failed: 3,
  cancelled: 3,
};

export function isTerminal(status: QueueStatus): boolean {
  return TERMINAL.has(status);
}

export function isActive(job: QueueJob): boolean {
  return !isTerminal(job.status);
}

function blankJob(key: string, label: number, request: JobRequest | null): QueueJob {
  return {
    key,
    id: null,
    label,
    request,
    status: 'submitting',
    position: null,
    step: 0,
    total: 0,
    stage: null,
    etaSeconds: null,
    preview: null,
    imageIds: [],
    error: null,
    cached: false,
    cancelRequested: false,
  };
}

/** Merge the server's view of a job (POST answer, GET /jobs) without losing newer live state. */
function mergeView(job: QueueJob, view: JobView): QueueJob {
  const next: QueueJob = { ...job, id: view.id };
  if (RANK[view.status] > RANK[job.status] || job.status === 'submitting') {
    next.status = view.status;
  }
  if (next.status === 'queued') next.position = view.position;
  else next.position = null;
  if (view.status === 'completed' && view.image_ids.length > 0) next.imageIds = view.image_ids;
  if (view.status === 'failed' && view.error) next.error = { ...view.error };
  if (view.status === 'completed' && next.total > 0) next.step = next.total;
  return next;
}

/** Apply one WebSocket event to its job. Returns the same object when nothing changes. */
export function applyEvent(job: QueueJob, event: JobEventMessage): QueueJob {
  if (isTerminal(job.status)) return job; // the end is final; later messages are replays
  switch (event.type) {
    case 'queued':
      if (job.status !== 'queued' && job.status !== 'submitting') return job;
      return { ...job, status: 'queued', position: event.position ?? job.position };
    case 'started':
      return { ...job, status: 'running', position: null };
    case 'progress': {
      if (event.step < job.step) return job; // out of order
      return {
        ...job,
        status: 'running',
        position: null,
        step: event.step,
        total: event.total,
        stage: event.stage ?? job.stage,
        etaSeconds: event.eta_s ?? null,
        preview: event.preview ? `data:image/jpeg;base64,${event.preview}` : job.preview,
      };
    }
    case 'completed':
      return {
        ...job,
        status: 'completed',
        position: null,
        step: job.total || job.step,
        etaSeconds: 0,
        imageIds: event.images,
        cached: Boolean(event.cached),
      };
    case 'failed':
      return {
        ...job,
        status: 'failed',
        position: null,
        etaSeconds: null,
        error: { code: event.code ?? 'internal_error', message: event.message ?? 'the job failed' },
      };
    case 'cancelled':
      return { ...job, status: 'cancelled', position: null, etaSeconds: null };
  }
}

function updateWhere(
  state: QueueState,
  match: (job: QueueJob) => boolean,
  update: (job: QueueJob) => QueueJob,
): QueueState {
  let changed = false;
  const jobs = state.jobs.map((job) => {
    if (!match(job)) return job;
    const next = update(job);
    if (next !== job) changed = true;
    return next;
  });
  return changed ? { ...state, jobs } : state;
}

export function queueReducer(state: QueueState, action: QueueAction): QueueState {
  switch (action.type) {
    case 'submitting': {
      // Newest first, like the server's job list.
      const job = blankJob(action.key, state.nextLabel, action.request);
      return { jobs: [job, ...state.jobs], nextLabel: state.nextLabel + 1 };
    }
    case 'submitted':
      return updateWhere(
        state,
        (job) => job.key === action.key,
        (job) => mergeView(job, action.job),
      );
    case 'submitFailed':
      return { ...state, jobs: state.jobs.filter((job) => job.key !== action.key) };
    case 'events': {
      if (action.events.length === 0) return state;
      const byId = new Map<string, JobEventMessage[]>();
      for (const event of action.events) {
        const list = byId.get(event.job_id);
        if (list) list.push(event);
        else byId.set(event.job_id, [event]);
      }
      return updateWhere(
        state,
        (job) => job.id !== null && byId.has(job.id),
        (job) => (byId.get(job.id as string) ?? []).reduce(applyEvent, job),
      );
    }
    case 'jobsPolled': {
      const views = new Map(action.jobs.map((view) => [view.id, view]));
      return updateWhere(
        state,
        (job) => job.id !== null && views.has(job.id) && !isTerminal(job.status),
        (job) => {
          const merged = mergeView(job, views.get(job.id as string) as JobView);
          return sameJob(job, merged) ? job : merged;
        },
      );
    }
    case 'restored': {
      // After a reload: the server's unfinished jobs that this queue does not show yet.
      const known = new Set(state.jobs.map((job) => job.id));
      const fresh = action.jobs
        .filter((view) => !known.has(view.id) && !isTerminal(view.status))
        .slice()
        .reverse(); // oldest gets the smallest label
      if (fresh.length === 0) return state;
      let label = state.nextLabel;
      const added = fresh.map((view) => mergeView(blankJob(`job-${view.id}`, label++, null), view));
      return { jobs: [...added.reverse(), ...state.jobs], nextLabel: label };
    }
    case 'cancelRequested':
      return updateWhere(
        state,
        (job) => job.key === action.key && isActive(job),
        (job) => ({ ...job, cancelRequested: true }),
      );
    case 'cancelFailed':
      return updateWhere(
        state,
        (job) => job.key === action.key,
        (job) => ({ ...job, cancelRequested: false }),
      );
    case 'dismiss':
      return {
        ...state,
        jobs: state.jobs.filter((job) => job.key !== action.key || isActive(job)),
      };
    case 'clearFinished':
      return { ...state, jobs: state.jobs.filter(isActive) };
    case 'reset':
      return initialQueueState;
  }
}

function sameJob(a: QueueJob, b: QueueJob): boolean {
  return (
    a.status === b.status &&
    a.position === b.position &&
    a.id === b.id &&
    a.imageIds.length === b.imageIds.length &&
    a.error?.code === b.error?.code
  );
}

/** 0-100, for the progress bar. */
export function progressPercent(job: QueueJob): number {
  if (job.status === 'completed') return 100;
  if (job.total <= 0) return 0;
  return Math.min(100, Math.round((job.step / job.total) * 100));
}

export interface QueueSummary {
  waiting: number;
  running: number;
  completed: number;
  failed: number;
  cancelled: number;
}

export function summarize(state: QueueState): QueueSummary {
  const summary: QueueSummary = { waiting: 0, running: 0, completed: 0, failed: 0, cancelled: 0 };
  for (const job of state.jobs) {
    if (job.status === 'submitting' || job.status === 'queued') summary.waiting += 1;
    else summary[job.status] += 1;
  }
  return summary;
}

/** Job ids the client must follow live (a WebSocket each). */
export function jobsToFollow(state: QueueState): string[] {
  return state.jobs.filter((job) => job.id !== null && isActive(job)).map((job) => job.id as string);
}

const MILESTONES = [25, 50, 75];

/**
 * What a screen reader should hear about one job's change, or null. Progress is announced at
 * quarters only: every step would drown the user.
 */
export function announcementFor(before: QueueJob | undefined, after: QueueJob): string | null {
  const name = `Job ${after.label}`;
  if (before === undefined) return null;
  if (before.status !== after.status) {
    switch (after.status) {
      case 'queued':
        return after.position !== null
          ? `${name} queued, position ${after.position}.`
          : `${name} queued.`;
      case 'running':
        return `${name} started.`;
      case 'completed': {
        const n = after.imageIds.length;
        return `${name} finished: ${n} image${n === 1 ? '' : 's'} ready.`;
      }
      case 'failed':
        return `${name} failed: ${after.error?.message ?? 'unknown error'}.`;
      case 'cancelled':
        return `${name} cancelled.`;
      default:
        return null;
    }
  }
  if (after.status === 'running') {
    const was = progressPercent(before);
    const now = progressPercent(after);
    const crossed = MILESTONES.filter((m) => was < m && now >= m).pop();
    if (crossed !== undefined) return `${name} ${crossed}% done.`;
  }
  return null;
}

/** All announcements between two states, in queue order (oldest job first). */
export function announcements(before: QueueState, after: QueueState): string[] {
  if (before === after) return [];
  const old = new Map(before.jobs.map((job) => [job.key, job]));
  const messages: string[] = [];
  for (const job of [...after.jobs].reverse()) {
    const previous = old.get(job.key);
    if (previous === job) continue;
    const message = announcementFor(previous, job);
    if (message) messages.push(message);
  }
  return messages;
}
