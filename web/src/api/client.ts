/**
 * The one way the app talks to the API.
 *
 * - The access token lives in memory only (never in localStorage, out of reach of stored XSS);
 *   the refresh token is an HttpOnly cookie scoped to /api/v1/auth, guarded by a double-submit
 *   CSRF cookie (accounts/routes.py).
 * - A 401 triggers one silent refresh and one retry. Refreshes are serialised across tabs with the
 *   Web Locks API: the server treats a reused refresh token as theft and ends the session.
 * - Every failure becomes an ApiError carrying the server's `{"error": {code, message, details}}`.
 */

export class ApiError extends Error {
  status: number;
  code: string;
  details: Record<string, unknown>;
  /** From Retry-After (429, 503) or the error details; null when the server gave none. */
  retryAfterSeconds: number | null;

  constructor(
    status: number,
    code: string,
    message: string,
    details: Record<string, unknown> = {},
    retryAfterSeconds: number | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export interface ApiOptions {
  method?: string;
  json?: unknown;
  body?: BodyInit;
  signal?: AbortSignal;
  headers?: Record<string, string>;
}

/** The token pair the server returns from /auth/otp/verify and /auth/refresh. */
export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: 'bearer';
  expires_in: number;
  refresh_expires_in: number;
}

const REFRESH_PATH = '/api/v1/auth/refresh';
const CSRF_COOKIE = 'fimum_csrf';
// Refresh a little before expiry so a request never races the clock.
const EXPIRY_MARGIN_MS = 30_000;

let accessToken: string | null = null;
let accessExpiresAt = 0;
let refreshing: Promise<boolean> | null = null;
const sessionEndedListeners = new Set<() => void>();

export function setSession(pair: Pick<TokenPair, 'access_token' | 'expires_in'>): void {
  accessToken = pair.access_token;
  accessExpiresAt = Date.now() + pair.expires_in * 1000;
}

export function clearSession(): void {
  accessToken = null;
  accessExpiresAt = 0;
}

export function hasSession(): boolean {
  return accessToken !== null;
}

/** Called when a refresh fails: the session is over (expired, revoked, logged out elsewhere). */
export function onSessionEnded(listener: () => void): () => void {
  sessionEndedListeners.add(listener);
  return () => sessionEndedListeners.delete(listener);
}

export function authHeader(): Record<string, string> {
  return accessToken ? { Authorization: `Bearer ${accessToken}` } : {};
}

function readCookie(name: string): string | null {
  for (const part of document.cookie.split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return decodeURIComponent(rest.join('='));
  }
  return null;
}

/** True when the browser holds a session cookie worth trying a silent refresh with. */
export function hasRefreshCookie(): boolean {
  return readCookie(CSRF_COOKIE) !== null;
}

async function refreshOnce(): Promise<boolean> {
  const csrf = readCookie(CSRF_COOKIE);
  if (!csrf) return false;
  const response = await fetch(REFRESH_PATH, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'X-CSRF-Token': csrf },
  });
  if (!response.ok) return false;
  setSession((await response.json()) as TokenPair);
  return true;
}

/**
 * Get a new access token with the refresh cookie. Concurrent callers in this tab share one request;
 * other tabs wait on the same lock and then use the rotated cookie.
 */
export function refreshSession(): Promise<boolean> {
  if (!refreshing) {
    const staleToken = accessToken;
    const run = async (): Promise<boolean> => {
      // Another tab may not share our memory, but within this tab a refresh that finished while we
      // waited for the lock already gave us a fresh token.
      if (accessToken !== staleToken && accessToken !== null) return true;
      try {
        return await refreshOnce();
      } catch {
        return false;
      }
    };
    const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined;
    refreshing = (locks ? locks.request('fimum-refresh', run) : run()).then((ok) => {
      if (!ok) {
        clearSession();
        sessionEndedListeners.forEach((listener) => listener());
      }
      return ok;
    });
    void refreshing.finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/** An access token valid for at least the next 30 s (refreshing if needed), or null when signed out. */
export async function freshAccessToken(): Promise<string | null> {
  if (accessToken && Date.now() < accessExpiresAt - EXPIRY_MARGIN_MS) return accessToken;
  if (!hasRefreshCookie()) return accessToken;
  return (await refreshSession()) ? accessToken : null;
}

export function parseRetryAfter(header: string | null, details: Record<string, unknown>): number | null {
  if (header) {
    const seconds = Number(header);
    if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
    const date = Date.parse(header);
    if (!Number.isNaN(date)) return Math.max(0, Math.ceil((date - Date.now()) / 1000));
  }
  for (const key of ['retry_after', 'retry_after_seconds']) {
    const value = details[key];
    if (typeof value === 'number') return Math.max(0, Math.ceil(value));
  }
  return null;
}

export async function toApiError(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`;
  let message = response.statusText || `Request failed (${response.status})`;
  let details: Record<string, unknown> = {};
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string; details?: unknown } };
    if (body.error) {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
      if (body.error.details && typeof body.error.details === 'object') {
        details = body.error.details as Record<string, unknown>;
      }
    }
  } catch {
    // Not our JSON error shape (a proxy's HTML page): keep the status text.
  }
  return new ApiError(response.status, code, message, details, parseRetryAfter(response.headers.get('Retry-After'), details));
}

async function send(path: string, options: ApiOptions): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json', ...authHeader(), ...options.headers };
  let body = options.body;
  if (options.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.json);
  }
  try {
    return await fetch(path, {
      method: options.method ?? (body === undefined ? 'GET' : 'POST'),
      headers,
      body,
      signal: options.signal,
      credentials: 'same-origin',
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') throw error;
    throw new ApiError(0, 'network_error', 'Cannot reach the server. Check your connection and try again.');
  }
}

/** Call the API; resolves with the parsed JSON (undefined for 204), rejects with ApiError. */
export async function api<T>(path: string, options: ApiOptions = {}): Promise<T> {
  if (accessToken && Date.now() >= accessExpiresAt - EXPIRY_MARGIN_MS && hasRefreshCookie()) {
    await refreshSession();
  }
  let response = await send(path, options);
  if (response.status === 401 && !path.startsWith('/api/v1/auth/') && hasRefreshCookie()) {
    if (await refreshSession()) response = await send(path, options);
  }
  if (!response.ok) throw await toApiError(response);
  if (response.status === 204) return undefined as T;
  const type = response.headers.get('Content-Type') ?? '';
  return (type.includes('json') ? await response.json() : await response.text()) as T;
}

/** Absolute ws:// or wss:// URL for a same-origin path (e.g. `/api/v1/image/jobs/<id>/events`). */
export function wsUrl(path: string): string {
  const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${window.location.host}${path}`;
}

/**
 * The server's WebSocket auth: the first message is `{"type": "auth", "token": "..."}` (never the
 * URL, so tokens stay out of access logs). Send this string right after the socket opens.
 */
export async function wsAuthMessage(): Promise<string> {
  return JSON.stringify({ type: 'auth', token: (await freshAccessToken()) ?? '' });
}
