// The queue's I/O around the pure reducer: submitting, one WebSocket per unfinished job, polling
// for queue positions, cancelling, restoring after a reload, and screen-reader announcements.
//
// A module-level store (useSyncExternalStore), so the queue and its sockets live on while the user
// visits another page and comes back. Events are applied in batches at most every 100 ms: eight
// jobs streaming previews re-render the panel ten times a second, not once per message.

import { useSyncExternalStore } from 'react';
import { api, ApiError, hasSession, onSessionEnded, wsAuthMessage, wsUrl } from '../api/client';
import { announce } from '../components/announce';
import { fetchImageBlob } from '../pages/gallery/imageFiles';
import {
  announcements,
  initialQueueState,
  jobsToFollow,
  queueReducer,
  type QueueAction,
  type QueueState,
} from './queueState';
import type { JobEventMessage, JobList, JobRequest, JobView } from './types';

const API = '/api/v1/image';
// Positions move when jobs ahead start; the server does not push that, so ask while waiting.
const POLL_QUEUED_MS = 2000;
// A safety net while only running jobs remain (their sockets normally tell everything).
const POLL_RUNNING_MS = 10000;
const RECONNECT_MAX_MS = 10000;
// Buffered events are applied at most this often: progress bars and previews move ten times a
// second, and eight streaming jobs cost ten small renders a second instead of one per message.
const FLUSH_EVERY_MS = 100;
// Screen-reader messages are gathered and spoken together at most this often: eight jobs finishing
// in one second are one announcement, not eight that cut each other off.
const ANNOUNCE_EVERY_MS = 1000;

type Listener = () => void;

/** A job's event stream: authenticates with a first message, reconnects until the job ends. */
class JobSocket {
  private socket: WebSocket | null = null;
  private closed = false;
  private attempts = 0;
  private timer: number | undefined;
  private readonly jobId: string;
  private readonly onEvent: (event: JobEventMessage) => void;

  constructor(jobId: string, onEvent: (event: JobEventMessage) => void) {
    this.jobId = jobId;
    this.onEvent = onEvent;
    this.connect();
  }

  private connect(): void {
    if (this.closed) return;
    const socket = new WebSocket(wsUrl(`${API}/jobs/${encodeURIComponent(this.jobId)}/events`));
    this.socket = socket;
    let ended = false;
    socket.onopen = () => {
      void wsAuthMessage().then((message) => {
        if (socket.readyState === WebSocket.OPEN) socket.send(message);
      });
    };
    socket.onmessage = (message: MessageEvent<string>) => {
      let event: { type?: string; code?: string } & Record<string, unknown>;
      try {
        event = JSON.parse(message.data) as typeof event;
      } catch {
        return;
      }
      if (event.type === 'error') {
        // not_found: nothing to follow. Auth errors: the next attempt sends a refreshed token,
        // unless the session is over (signed out): then there is nothing to follow either.
        if (event.code === 'not_found' || !hasSession()) ended = true;
        return;
      }
      this.attempts = 0;
      const typed = event as unknown as JobEventMessage;
      if (typed.type === 'completed' || typed.type === 'failed' || typed.type === 'cancelled') ended = true;
      this.onEvent(typed);
    };
    socket.onclose = () => {
      this.socket = null;
      if (this.closed || ended) return;
      const delay = Math.min(RECONNECT_MAX_MS, 500 * 2 ** this.attempts);
      this.attempts += 1;
      this.timer = window.setTimeout(() => this.connect(), delay);
    };
  }

  close(): void {
    this.closed = true;
    window.clearTimeout(this.timer);
    this.socket?.close();
    this.socket = null;
  }
}

export interface SubmitOutcome {
  /** How many of the requests were queued before one was refused. */
  queued: number;
  /** Why the rest were not queued (quota, rate limit, safety filter, validation...). */
  error: unknown;
}

class QueueStore {
  private state: QueueState = initialQueueState;
  private readonly listeners = new Set<Listener>();
  private readonly sockets = new Map<string, JobSocket>();
  private pending: JobEventMessage[] = [];
  private flushTimer: number | undefined;
  private lastFlush = 0;
  private pollTimer: number | undefined;
  private polling = false;
  private keySeq = 0;
  private unspoken: string[] = [];
  private announceTimer: number | undefined;
  private lastAnnounced = 0;
  /** Whose queue this is: another sign-in starts an empty one. */
  private owner: string | null = null;

  subscribe = (listener: Listener): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getSnapshot = (): QueueState => this.state;

  dispatch(action: QueueAction): void {
    const before = this.state;
    const after = queueReducer(before, action);
    if (after === before) return;
    this.state = after;
    this.speak(announcements(before, after));
    this.listeners.forEach((listener) => listener());
    this.sync();
  }

  /**
   * Show this user's queue: another user's jobs and sockets go; their unfinished jobs are picked up
   * from the server (after a reload, or a sign-in in another tab).
   */
  attach(userId: string | null): void {
    if (this.owner === userId) return;
    this.owner = userId;
    this.dispatch({ type: 'reset' });
    if (userId === null) return;
    api<JobList>(`${API}/jobs`).then(
      (list) => {
        if (this.owner === userId) this.dispatch({ type: 'restored', jobs: list.items });
      },
      () => undefined, // the studio works without the old jobs; new ones still appear
    );
  }

  /** Queue the requests one by one; stops at the first refusal (e.g. the daily quota). */
  async submitAll(requests: JobRequest[], signal?: AbortSignal): Promise<SubmitOutcome> {
    let queued = 0;
    for (const request of requests) {
      const key = `local-${Date.now()}-${++this.keySeq}`;
      this.dispatch({ type: 'submitting', key, request });
      try {
        const job = await this.send(request, signal);
        this.dispatch({ type: 'submitted', key, job });
        queued += 1;
      } catch (error) {
        this.dispatch({ type: 'submitFailed', key });
        return { queued, error };
      }
    }
    return { queued, error: null };
  }

  private async send(request: JobRequest, signal?: AbortSignal): Promise<JobView> {
    if (request.kind === 'generate') {
      return api<JobView>(`${API}/generate`, { json: { ...request.body, async: true }, signal });
    }
    // Image-to-image from a stored image: its PNG goes up as the multipart `image` part.
    const source = await fetchImageBlob(`/api/v1/images/${encodeURIComponent(request.sourceImageId)}/file`, signal);
    const form = new FormData();
    form.append('image', source, `${request.sourceImageId}.png`);
    for (const [name, value] of Object.entries(request.body)) {
      if (value !== undefined && value !== null) form.append(name, String(value));
    }
    form.append('async', 'true');
    return api<JobView>(`${API}/edit`, { body: form, signal });
  }

  async cancel(key: string): Promise<void> {
    const job = this.state.jobs.find((j) => j.key === key);
    if (!job?.id) return;
    this.dispatch({ type: 'cancelRequested', key });
    try {
      const view = await api<JobView>(`${API}/jobs/${encodeURIComponent(job.id)}`, { method: 'DELETE' });
      this.dispatch({ type: 'jobsPolled', jobs: [view] });
    } catch (error) {
      this.dispatch({ type: 'cancelFailed', key });
      throw error;
    }
  }

  dismiss(key: string): void {
    this.dispatch({ type: 'dismiss', key });
  }

  clearFinished(): void {
    this.dispatch({ type: 'clearFinished' });
  }

  private speak(messages: string[]): void {
    if (messages.length === 0) return;
    this.unspoken.push(...messages);
    if (this.announceTimer !== undefined) return;
    const wait = Math.max(0, this.lastAnnounced + ANNOUNCE_EVERY_MS - Date.now());
    this.announceTimer = window.setTimeout(() => {
      this.announceTimer = undefined;
      this.lastAnnounced = Date.now();
      const text = this.unspoken.join(' ');
      this.unspoken = [];
      announce(text);
    }, wait);
  }

  // ---------------------------------------------------------------- live updates

  private receive = (event: JobEventMessage): void => {
    this.pending.push(event);
    if (this.flushTimer !== undefined) return;
    const wait = Math.max(0, this.lastFlush + FLUSH_EVERY_MS - Date.now());
    this.flushTimer = window.setTimeout(this.flush, wait);
  };

  private flush = (): void => {
    this.flushTimer = undefined;
    this.lastFlush = Date.now();
    const events = this.pending;
    this.pending = [];
    this.dispatch({ type: 'events', events });
  };

  /** One socket per unfinished job; polling while any waits in the queue. */
  private sync(): void {
    const follow = new Set(jobsToFollow(this.state));
    for (const [id, socket] of this.sockets) {
      if (!follow.has(id)) {
        socket.close();
        this.sockets.delete(id);
      }
    }
    for (const id of follow) {
      if (!this.sockets.has(id)) this.sockets.set(id, new JobSocket(id, this.receive));
    }
    this.schedulePoll();
  }

  private pollInterval(): number | null {
    const active = this.state.jobs.filter((job) => job.id !== null && !['completed', 'failed', 'cancelled'].includes(job.status));
    if (active.length === 0) return null;
    return active.some((job) => job.status === 'queued') ? POLL_QUEUED_MS : POLL_RUNNING_MS;
  }

  private schedulePoll(): void {
    if (this.polling || this.pollTimer !== undefined) return;
    const interval = this.pollInterval();
    if (interval === null) return;
    this.pollTimer = window.setTimeout(() => void this.poll(), interval);
  }

  private async poll(): Promise<void> {
    this.pollTimer = undefined;
    if (!hasSession()) return; // signed out: attach() starts again at the next sign-in
    this.polling = true;
    try {
      const list = await api<JobList>(`${API}/jobs`);
      this.dispatch({ type: 'jobsPolled', jobs: list.items });
    } catch (error) {
      // Signed out or offline: the sockets reconnect on their own; try again later.
      if (!(error instanceof ApiError)) throw error;
    } finally {
      this.polling = false;
      this.schedulePoll();
    }
  }
}

export const queueStore = new QueueStore();
// Signed out (here, in another tab, or the session expired): drop the jobs and close the sockets.
onSessionEnded(() => queueStore.attach(null));

/** The queue's current state; re-renders when it changes. */
export function useQueue(): QueueState {
  return useSyncExternalStore(queueStore.subscribe, queueStore.getSnapshot, queueStore.getSnapshot);
}
