import { useCallback, useEffect, useRef, useState } from 'react';
import { ApiError, api, wsAuthMessage, wsUrl } from '../../api/client';
import { announce } from '../../components/announce';
import type { JobEventMessage, JobView } from '../../queue/types';

export type EditKind = 'edit' | 'outpaint' | 'upscale';

/** What the editor shows about the running job. */
export type JobState =
  | { phase: 'idle' }
  | { phase: 'submitting' }
  | { phase: 'queued'; jobId: string; position: number | null }
  | {
      phase: 'running';
      jobId: string;
      step: number;
      total: number;
      etaSeconds: number | null;
      stage: string | null;
      preview: string | null;
    }
  | { phase: 'completed'; jobId: string; imageIds: string[] }
  | { phase: 'failed'; error: unknown }
  | { phase: 'cancelled' };

const POLL_MS = 1000;
const LABEL: Record<EditKind, string> = { edit: 'Edit', outpaint: 'Outpaint', upscale: 'Upscale' };

function failure(message: { code?: string; message?: string }): ApiError {
  const code = message.code ?? 'job_failed';
  const status = code === 'nsfw_content_blocked' || code === 'invalid_input' ? 400 : 500;
  return new ApiError(status, code, message.message ?? 'The job failed.');
}

/**
 * Submit an edit job (async) and follow it on its WebSocket; if the socket cannot be used,
 * fall back to polling the job. One job at a time: the editor works on one image.
 */
export function useEditJob() {
  const [state, setState] = useState<JobState>({ phase: 'idle' });
  const socket = useRef<WebSocket | null>(null);
  const poll = useRef<number | null>(null);
  const current = useRef<string | null>(null);

  const stopFollowing = useCallback(() => {
    socket.current?.close();
    socket.current = null;
    if (poll.current !== null) window.clearInterval(poll.current);
    poll.current = null;
  }, []);

  useEffect(() => stopFollowing, [stopFollowing]);

  const finish = useCallback(
    (next: JobState) => {
      stopFollowing();
      current.current = null;
      setState(next);
    },
    [stopFollowing],
  );

  const onEvent = useCallback(
    (event: JobEventMessage, kind: EditKind) => {
      if (event.job_id !== current.current) return;
      switch (event.type) {
        case 'queued':
          setState({ phase: 'queued', jobId: event.job_id, position: event.position });
          announce(event.position ? `${LABEL[kind]} queued, position ${event.position}.` : `${LABEL[kind]} queued.`);
          break;
        case 'started':
          setState({ phase: 'running', jobId: event.job_id, step: 0, total: 0, etaSeconds: null, stage: null, preview: null });
          announce(`${LABEL[kind]} started.`);
          break;
        case 'progress':
          setState((previous) => ({
            phase: 'running',
            jobId: event.job_id,
            step: event.step,
            total: event.total,
            etaSeconds: event.eta_s ?? null,
            stage: event.stage ?? null,
            // Previews come every few steps; keep the last one in between.
            preview: event.preview ?? (previous.phase === 'running' ? previous.preview : null),
          }));
          break;
        case 'completed':
          finish({ phase: 'completed', jobId: event.job_id, imageIds: event.images });
          announce(`${LABEL[kind]} finished. The result is shown with a before and after slider.`);
          break;
        case 'failed':
          finish({ phase: 'failed', error: failure(event) });
          announce(`${LABEL[kind]} failed: ${event.message ?? 'unknown error'}`, 'assertive');
          break;
        case 'cancelled':
          finish({ phase: 'cancelled' });
          announce(`${LABEL[kind]} cancelled.`);
          break;
      }
    },
    [finish],
  );

  const startPolling = useCallback(
    (job: JobView, kind: EditKind) => {
      if (poll.current !== null) return;
      poll.current = window.setInterval(() => {
        api<JobView>(job.url)
          .then((view) => {
            const base = { job_id: view.id };
            if (view.status === 'queued') onEvent({ ...base, type: 'queued', position: view.position }, kind);
            else if (view.status === 'completed') onEvent({ ...base, type: 'completed', images: view.image_ids }, kind);
            else if (view.status === 'failed') onEvent({ ...base, type: 'failed', ...(view.error ?? {}) }, kind);
            else if (view.status === 'cancelled') onEvent({ ...base, type: 'cancelled' }, kind);
          })
          .catch((error: unknown) => finish({ phase: 'failed', error }));
      }, POLL_MS);
    },
    [finish, onEvent],
  );

  const follow = useCallback(
    (job: JobView, kind: EditKind) => {
      let ws: WebSocket;
      try {
        ws = new WebSocket(wsUrl(job.websocket_url));
      } catch {
        startPolling(job, kind);
        return;
      }
      socket.current = ws;
      ws.onopen = () => {
        void wsAuthMessage().then((message) => ws.send(message));
      };
      ws.onmessage = (message) => {
        const event = JSON.parse(String(message.data)) as JobEventMessage | { type: 'error' };
        if (event.type === 'error') return; // auth or lookup trouble: the close below falls back
        onEvent(event, kind);
      };
      ws.onclose = () => {
        if (socket.current === ws && current.current === job.id) {
          socket.current = null;
          startPolling(job, kind); // dropped before the end: carry on by polling
        }
      };
    },
    [onEvent, startPolling],
  );

  const submit = useCallback(
    async (kind: EditKind, form: FormData) => {
      stopFollowing();
      setState({ phase: 'submitting' });
      form.set('async', 'true');
      try {
        const job = await api<JobView>(`/api/v1/image/${kind}`, { method: 'POST', body: form });
        current.current = job.id;
        setState({ phase: 'queued', jobId: job.id, position: job.position });
        follow(job, kind);
      } catch (error) {
        setState({ phase: 'failed', error });
        announce(`${LABEL[kind]} refused: ${error instanceof Error ? error.message : 'unknown error'}`, 'assertive');
      }
    },
    [follow, stopFollowing],
  );

  const cancel = useCallback(async () => {
    const jobId = current.current;
    if (!jobId) return;
    try {
      await api<JobView>(`/api/v1/image/jobs/${jobId}`, { method: 'DELETE' });
    } catch (error) {
      setState({ phase: 'failed', error });
    }
  }, []);

  const reset = useCallback(() => finish({ phase: 'idle' }), [finish]);

  return { state, submit, cancel, reset };
}
