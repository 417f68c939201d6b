import { ApiError, authHeader, freshAccessToken, hasRefreshCookie, refreshSession } from './client';

/**
 * `fetch` for binary API responses (image files), with the same session handling as `api()`: a fresh
 * token first, one silent refresh and retry on 401, and failures as ApiError with the server's
 * message (e.g. "no such image").
 */
export async function fetchAuthorized(path: string, init: { signal?: AbortSignal } = {}): Promise<Response> {
  await freshAccessToken();
  const send = async () => {
    try {
      return await fetch(path, { headers: authHeader(), signal: init.signal, credentials: 'same-origin' });
    } catch (error) {
      if (error instanceof DOMException && error.name === 'AbortError') throw error;
      throw new ApiError(0, 'network_error', 'Cannot reach the server. Check your connection and try again.');
    }
  };
  let response = await send();
  if (response.status === 401 && hasRefreshCookie() && (await refreshSession())) response = await send();
  if (response.ok) return response;
  let code = `http_${response.status}`;
  let message = response.statusText || `Request failed (${response.status})`;
  let details: Record<string, unknown> = {};
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string; details?: unknown } };
    code = body.error?.code ?? code;
    message = body.error?.message ?? message;
    if (body.error?.details && typeof body.error.details === 'object') {
      details = body.error.details as Record<string, unknown>;
    }
  } catch {
    // Not our JSON error shape: keep the status text.
  }
  throw new ApiError(response.status, code, message, details);
}
