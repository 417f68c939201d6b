/** Pure helpers of the sign-in page (unit-tested in loginLogic.test.ts). */

export const CODE_LENGTH = 6;
/** Seconds between two code requests even when the server would allow more: mail takes a moment. */
export const RESEND_COOLDOWN_S = 30;

/** The digits of whatever was typed or pasted ("123 456", "Your code: 123-456"), at most six. */
export function extractCode(text: string): string {
  return text.replace(/\D/g, '').slice(0, CODE_LENGTH);
}

export type IdentifierCheck = { ok: true; value: string; kind: 'email' | 'phone' } | { ok: false; message: string };

/** A first check before asking the server (which validates properly): catches the obvious slips. */
export function checkIdentifier(raw: string): IdentifierCheck {
  const value = raw.trim();
  if (!value) return { ok: false, message: 'Enter your e-mail address or phone number.' };
  if (value.startsWith('+') || /^[\d\s()-]+$/.test(value)) {
    const digits = value.replace(/[\s()-]/g, '');
    if (!/^\+\d{7,15}$/.test(digits)) {
      return { ok: false, message: 'Enter the phone number in international form, starting with + and the country code (e.g. +14155550123).' };
    }
    return { ok: true, value: digits, kind: 'phone' };
  }
  if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(value)) {
    return { ok: false, message: 'Enter a valid e-mail address, like ada@example.com.' };
  }
  return { ok: true, value, kind: 'email' };
}

/**
 * When the next code may be requested (ms since epoch): after the cool-down, or, when the server
 * says no requests are left in its window, when that window ends.
 */
export function nextRequestAt(now: number, requestsRemaining: number, windowResetsAtS: number): number {
  const cooldown = now + RESEND_COOLDOWN_S * 1000;
  return requestsRemaining > 0 ? cooldown : Math.max(cooldown, windowResetsAtS * 1000);
}

/** "0:45", "12:03" */
export function formatCountdown(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** Only same-site paths after sign-in (no open redirect through ?next=//evil.example). */
export function safeNext(next: string | null): string {
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\') || next.startsWith('/login')) {
    return '/images';
  }
  return next;
}

/** Where the code went, in words, for the page. */
export function deliveryNote(delivery: string, channel: 'email' | 'sms'): string | null {
  if (delivery === 'console') {
    return `This server has no ${channel === 'email' ? 'mail server' : 'SMS service'} configured (development mode): the code was printed in the terminal where the server runs, in a block marked DEVELOPMENT ONLY.`;
  }
  return null;
}
