import { describe, expect, it } from 'vitest';

import {
  announcementFor,
  announcements,
  initialQueueState,
  jobsToFollow,
  progressPercent,
  queueReducer,
  summarize,
  type QueueAction,
  type QueueJob,
  type QueueState,
} from './queueState';
import type { JobEventMessage, JobRequest, JobView } from './types';

const request: JobRequest = {
  kind: 'generate',
  body: {
    prompt: 'a lighthouse',
    negative_prompt: '',
    width: 512,
    height: 512,
    steps: 20,
    guidance_scale: 7.5,
    batch_size: 1,
  },
};

function view(id: string, overrides: Partial<JobView> = {}): JobView {
  return {
    id,
    status: 'queued',
    kind: 'generate',
    batch_size: 1,
    created_at: '2026-01-01T00:00:00+00:00',
    started_at: null,
    finished_at: null,
    position: 1,
    url: `/api/v1/image/jobs/${id}`,
    websocket_url: `/api/v1/image/jobs/${id}/events`,
    image_ids: [],
    ...overrides,
  };
}

/** The newest job (the top of the queue panel). */
function top(state: QueueState): QueueJob {
  const job = state.jobs[0];
  if (!job) throw new Error('the queue is empty');
  return job;
}

function run(actions: QueueAction[], state: QueueState = initialQueueState): QueueState {
  return actions.reduce(queueReducer, state);
}

/** A queue with one submitted job `j1` (key k1) at position 2. */
function oneQueued(): QueueState {
  return run([
    { type: 'submitting', key: 'k1', request },
    { type: 'submitted', key: 'k1', job: view('j1', { position: 2 }) },
  ]);
}

function progress(step: number, total = 20, preview?: string): JobEventMessage {
  return { type: 'progress', job_id: 'j1', step, total, eta_s: 1.5, stage: 'base', preview };
}

describe('queueReducer', () => {
  it('adds a submission at the top with a running label, then takes the server job', () => {
    const state = run([
      { type: 'submitting', key: 'k1', request },
      { type: 'submitting', key: 'k2', request },
    ]);
    expect(state.jobs.map((job) => [job.key, job.label, job.status])).toEqual([
      ['k2', 2, 'submitting'],
      ['k1', 1, 'submitting'],
    ]);
    const after = queueReducer(state, { type: 'submitted', key: 'k1', job: view('j1', { position: 3 }) });
    const job = after.jobs.find((j) => j.key === 'k1');
    expect(job).toMatchObject({ id: 'j1', status: 'queued', position: 3, request });
    expect(jobsToFollow(after)).toEqual(['j1']);
  });

  it('drops a submission the server refused', () => {
    const state = run([
      { type: 'submitting', key: 'k1', request },
      { type: 'submitFailed', key: 'k1' },
    ]);
    expect(state.jobs).toEqual([]);
    // The label is not reused: announcements stay unambiguous.
    expect(top(queueReducer(state, { type: 'submitting', key: 'k2', request })).label).toBe(2);
  });

  it('follows a job through started, progress with previews, and completed', () => {
    let state = oneQueued();
    state = queueReducer(state, { type: 'events', events: [{ type: 'started', job_id: 'j1' }] });
    expect(top(state)).toMatchObject({ status: 'running', position: null });
    state = queueReducer(state, { type: 'events', events: [progress(5, 20, 'QUJD')] });
    expect(top(state)).toMatchObject({ step: 5, total: 20, etaSeconds: 1.5, stage: 'base' });
    expect(top(state).preview).toBe('data:image/jpeg;base64,QUJD');
    expect(progressPercent(top(state))).toBe(25);
    // A progress event without a preview keeps the last one on screen.
    state = queueReducer(state, { type: 'events', events: [progress(6)] });
    expect(top(state).preview).toBe('data:image/jpeg;base64,QUJD');
    state = queueReducer(state, {
      type: 'events',
      events: [{ type: 'completed', job_id: 'j1', images: ['i1'] }],
    });
    expect(top(state)).toMatchObject({ status: 'completed', imageIds: ['i1'], step: 20 });
    expect(progressPercent(top(state))).toBe(100);
    expect(jobsToFollow(state)).toEqual([]);
  });

  it('applies a frame of events for several jobs at once, in order per job', () => {
    let state = run([
      { type: 'submitting', key: 'k1', request },
      { type: 'submitted', key: 'k1', job: view('j1') },
      { type: 'submitting', key: 'k2', request },
      { type: 'submitted', key: 'k2', job: view('j2', { position: 2 }) },
    ]);
    state = queueReducer(state, {
      type: 'events',
      events: [
        progress(1),
        { type: 'progress', job_id: 'j2', step: 3, total: 20 },
        progress(2),
        { type: 'progress', job_id: 'unknown', step: 1, total: 2 },
      ],
    });
    const byId = Object.fromEntries(state.jobs.map((job) => [job.id, job]));
    expect(byId.j1?.step).toBe(2);
    expect(byId.j2?.step).toBe(3);
    expect(state.jobs).toHaveLength(2);
  });

  it('ignores out-of-order progress and anything after the end', () => {
    let state = oneQueued();
    state = queueReducer(state, { type: 'events', events: [progress(10), progress(4)] });
    expect(top(state).step).toBe(10);
    state = queueReducer(state, { type: 'events', events: [{ type: 'cancelled', job_id: 'j1' }] });
    const ended = state;
    state = queueReducer(state, { type: 'events', events: [progress(12), { type: 'started', job_id: 'j1' }] });
    expect(state).toBe(ended); // unchanged object: no re-render
    expect(top(state).status).toBe('cancelled');
  });

  it('never moves a running job back to queued on a late snapshot or poll', () => {
    let state = oneQueued();
    state = queueReducer(state, { type: 'events', events: [progress(3)] });
    state = queueReducer(state, { type: 'events', events: [{ type: 'queued', job_id: 'j1', position: 4 }] });
    expect(top(state)).toMatchObject({ status: 'running', position: null });
    state = queueReducer(state, { type: 'jobsPolled', jobs: [view('j1', { status: 'queued', position: 1 })] });
    expect(top(state).status).toBe('running');
  });

  it('updates queue positions from a poll and returns the same state when nothing moved', () => {
    let state = oneQueued();
    state = queueReducer(state, { type: 'jobsPolled', jobs: [view('j1', { position: 1 })] });
    expect(top(state).position).toBe(1);
    const same = queueReducer(state, { type: 'jobsPolled', jobs: [view('j1', { position: 1 })] });
    expect(same).toBe(state);
    // A poll may also be the first to see the end (e.g. the socket dropped).
    const done = queueReducer(state, {
      type: 'jobsPolled',
      jobs: [view('j1', { status: 'completed', position: null, image_ids: ['a'] })],
    });
    expect(top(done)).toMatchObject({ status: 'completed', imageIds: ['a'] });
  });

  it('records why a job failed', () => {
    const state = queueReducer(oneQueued(), {
      type: 'events',
      events: [{ type: 'failed', job_id: 'j1', code: 'nsfw_content_blocked', message: 'blocked' }],
    });
    expect(top(state)).toMatchObject({
      status: 'failed',
      error: { code: 'nsfw_content_blocked', message: 'blocked' },
    });
  });

  it('marks a cancel request and clears it when the request fails', () => {
    let state = queueReducer(oneQueued(), { type: 'cancelRequested', key: 'k1' });
    expect(top(state).cancelRequested).toBe(true);
    state = queueReducer(state, { type: 'cancelFailed', key: 'k1' });
    expect(top(state).cancelRequested).toBe(false);
  });

  it('restores unfinished server jobs after a reload, oldest with the smallest label', () => {
    const state = queueReducer(initialQueueState, {
      type: 'restored',
      jobs: [
        view('new', { position: 2 }), // the server lists newest first
        view('done', { status: 'completed', image_ids: ['x'] }),
        view('old', { status: 'running', position: null }),
      ],
    });
    expect(state.jobs.map((job) => [job.id, job.label, job.status])).toEqual([
      ['new', 2, 'queued'],
      ['old', 1, 'running'],
    ]);
    // Restoring again adds nothing.
    expect(queueReducer(state, { type: 'restored', jobs: [view('new')] })).toBe(state);
  });

  it('dismisses finished jobs only', () => {
    let state = oneQueued();
    state = queueReducer(state, { type: 'dismiss', key: 'k1' });
    expect(state.jobs).toHaveLength(1); // still queued: stays
    state = run(
      [
        { type: 'events', events: [{ type: 'completed', job_id: 'j1', images: ['i'] }] },
        { type: 'submitting', key: 'k2', request },
        { type: 'clearFinished' },
      ],
      state,
    );
    expect(state.jobs.map((job) => job.key)).toEqual(['k2']);
  });

  it('summarises the queue', () => {
    const state = run(
      [
        { type: 'submitting', key: 'k2', request },
        { type: 'submitted', key: 'k2', job: view('j2') },
        { type: 'events', events: [{ type: 'started', job_id: 'j1' }] },
      ],
      oneQueued(),
    );
    expect(summarize(state)).toEqual({ waiting: 1, running: 1, completed: 0, failed: 0, cancelled: 0 });
  });
});

describe('announcements', () => {
  it('says when a job is queued, started, at each quarter, and finished', () => {
    const heard: string[] = [];
    let state = initialQueueState;
    const steps: QueueAction[] = [
      { type: 'submitting', key: 'k1', request },
      { type: 'submitted', key: 'k1', job: view('j1', { position: 2 }) },
      { type: 'events', events: [{ type: 'started', job_id: 'j1' }] },
      { type: 'events', events: [progress(1)] },
      { type: 'events', events: [progress(4)] },
      { type: 'events', events: [progress(6)] }, // 30 %: crosses 25
      { type: 'events', events: [progress(7)] },
      { type: 'events', events: [progress(19)] }, // 95 %: crosses 50 and 75, says the last
      { type: 'events', events: [{ type: 'completed', job_id: 'j1', images: ['a', 'b'] }] },
    ];
    for (const action of steps) {
      const next = queueReducer(state, action);
      heard.push(...announcements(state, next));
      state = next;
    }
    expect(heard).toEqual([
      'Job 1 queued, position 2.',
      'Job 1 started.',
      'Job 1 25% done.',
      'Job 1 75% done.',
      'Job 1 finished: 2 images ready.',
    ]);
  });

  it('names the failure reason and the cancel', () => {
    const state = oneQueued();
    const failed = queueReducer(state, {
      type: 'events',
      events: [{ type: 'failed', job_id: 'j1', message: 'the GPU ran out of memory' }],
    });
    expect(announcementFor(top(state), top(failed))).toBe(
      'Job 1 failed: the GPU ran out of memory.',
    );
    const cancelled = queueReducer(state, { type: 'events', events: [{ type: 'cancelled', job_id: 'j1' }] });
    expect(announcements(state, cancelled)).toEqual(['Job 1 cancelled.']);
  });

  it('announces several jobs oldest first', () => {
    const before = run([
      { type: 'submitting', key: 'k1', request },
      { type: 'submitting', key: 'k2', request },
    ]);
    const after = run(
      [
        { type: 'submitted', key: 'k2', job: view('j2', { position: 2 }) },
        { type: 'submitted', key: 'k1', job: view('j1', { position: 1 }) },
      ],
      before,
    );
    expect(announcements(before, after)).toEqual(['Job 1 queued, position 1.', 'Job 2 queued, position 2.']);
  });
});
