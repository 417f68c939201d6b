/** POST a request whose answer streams as Server-Sent Events, with the session's auth. */
import { ApiError, authHeader, freshAccessToken, hasRefreshCookie, refreshSession, toApiError } from '../api/client';
import { eventFromFrame, type ChatEvent } from './events';
import { readSse } from './sse';

export interface StreamStart {
  /** X-Conversation-Id: the conversation the answer belongs to (useful with "new"). */
  conversationId: string | null;
  events: AsyncGenerator<ChatEvent>;
}

async function send(path: string, body: unknown, signal: AbortSignal): Promise<Response> {
  try {
    return await fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', ...authHeader() },
      body: JSON.stringify(body),
      signal,
      credentials: 'same-origin',
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') throw error;
    throw new ApiError(0, 'network_error', 'Cannot reach the server. Check your connection and try again.');
  }
}

async function* events(response: Response): AsyncGenerator<ChatEvent> {
  if (!response.body) return;
  for await (const frame of readSse(response.body)) {
    const event = eventFromFrame(frame);
    if (event) yield event;
  }
}

/**
 * Errors before the stream starts (404, 409, 429, 503 chat_not_configured...) reject with ApiError;
 * after that, failures arrive as `error` events. Aborting `signal` closes the connection, which
 * the server takes as a stop.
 */
export async function postStream(path: string, body: unknown, signal: AbortSignal): Promise<StreamStart> {
  await freshAccessToken();
  let response = await send(path, body, signal);
  if (response.status === 401 && hasRefreshCookie() && (await refreshSession())) response = await send(path, body, signal);
  if (!response.ok) throw await toApiError(response);
  return { conversationId: response.headers.get('X-Conversation-Id'), events: events(response) };
}
