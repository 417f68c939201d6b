import { checkIdentifier, deliveryNote, extractCode, formatCountdown, nextRequestAt, RESEND_COOLDOWN_S, safeNext } from './loginLogic';

describe('extractCode', () => {
  it('keeps the digits of a pasted message, at most six', () => {
    expect(extractCode('Your code: 123 456')).toBe('123456');
    expect(extractCode('12-34')).toBe('1234');
    expect(extractCode('1234567890')).toBe('123456');
    expect(extractCode('abc')).toBe('');
  });
});

describe('checkIdentifier', () => {
  it('accepts e-mail addresses and international phone numbers', () => {
    expect(checkIdentifier('  ada@example.com ')).toEqual({ ok: true, value: 'ada@example.com', kind: 'email' });
    expect(checkIdentifier('+1 (415) 555-0123')).toEqual({ ok: true, value: '+14155550123', kind: 'phone' });
  });
  it('explains what is wrong', () => {
    expect(checkIdentifier('')).toMatchObject({ ok: false, message: expect.stringContaining('Enter your') });
    expect(checkIdentifier('ada@example')).toMatchObject({ ok: false, message: expect.stringContaining('valid e-mail') });
    expect(checkIdentifier('4155550123')).toMatchObject({ ok: false, message: expect.stringContaining('international') });
  });
});

describe('nextRequestAt', () => {
  const now = 1_000_000;
  it('waits the cool-down while requests remain', () => {
    expect(nextRequestAt(now, 2, now / 1000 + 900)).toBe(now + RESEND_COOLDOWN_S * 1000);
  });
  it('waits for the server window when none remain', () => {
    expect(nextRequestAt(now, 0, now / 1000 + 900)).toBe(now + 900_000);
  });
});

describe('formatCountdown and safeNext', () => {
  it('formats minutes and seconds', () => {
    expect(formatCountdown(45)).toBe('0:45');
    expect(formatCountdown(723.2)).toBe('12:04');
  });
  it('refuses open redirects', () => {
    expect(safeNext('/gallery?x=1')).toBe('/gallery?x=1');
    expect(safeNext('//evil.example')).toBe('/images');
    expect(safeNext('https://evil.example')).toBe('/images');
    expect(safeNext(null)).toBe('/images');
  });
});

describe('deliveryNote', () => {
  it('says where a development code went, and nothing for real delivery', () => {
    expect(deliveryNote('console', 'email')).toContain('printed in the terminal');
    expect(deliveryNote('console', 'sms')).toContain('no SMS service');
    expect(deliveryNote('smtp', 'email')).toBeNull();
  });
});
