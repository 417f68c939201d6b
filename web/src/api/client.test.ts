import { ApiError, parseRetryAfter, toApiError, wsUrl } from './client';

describe('toApiError', () => {
  it('reads the server error shape and Retry-After', async () => {
    const response = new Response(
      JSON.stringify({ error: { code: 'quota_exceeded', message: 'daily image quota reached', details: { limit: 5 } } }),
      { status: 429, headers: { 'Content-Type': 'application/json', 'Retry-After': '3600' } },
    );
    const error = await toApiError(response);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 429, code: 'quota_exceeded', message: 'daily image quota reached', retryAfterSeconds: 3600 });
    expect(error.details).toEqual({ limit: 5 });
  });

  it('survives a body that is not ours (a proxy error page)', async () => {
    const error = await toApiError(new Response('<html>Bad gateway</html>', { status: 502, statusText: 'Bad Gateway' }));
    expect(error).toMatchObject({ status: 502, code: 'http_502', message: 'Bad Gateway', retryAfterSeconds: null });
  });
});

describe('parseRetryAfter', () => {
  it('takes seconds, an HTTP date, or the details', () => {
    expect(parseRetryAfter('12', {})).toBe(12);
    const inOneMinute = new Date(Date.now() + 60_000).toUTCString();
    expect(parseRetryAfter(inOneMinute, {})).toBeGreaterThanOrEqual(58);
    expect(parseRetryAfter(null, { retry_after: 7.2 })).toBe(8);
    expect(parseRetryAfter(null, {})).toBeNull();
  });
});

describe('wsUrl', () => {
  it('keeps the page origin and picks ws or wss', () => {
    expect(wsUrl('/api/v1/image/jobs/1/events')).toBe(`ws://${window.location.host}/api/v1/image/jobs/1/events`);
  });
});
