import { useEffect, useId, useRef, useState, type ClipboardEvent, type FormEvent } from 'react';
import { Link, Navigate, useNavigate, useSearchParams } from 'react-router';
import { ApiError } from '../../api/client';
import type { OtpAccepted } from '../../api/types';
import { useAuth } from '../../auth/AuthContext';
import { announce } from '../../components/announce';
import { Button } from '../../components/Button';
import { Alert, ErrorMessage } from '../../components/ErrorMessage';
import { TextField } from '../../components/Field';
import { formatDuration } from '../../components/format';
import { PageHeader } from '../../components/PageHeader';
import { checkIdentifier, CODE_LENGTH, deliveryNote, extractCode, formatCountdown, nextRequestAt, safeNext } from './loginLogic';
import './login.css';

/** Seconds left until `at` (ms), ticking once a second while positive. */
function useCountdown(at: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (at <= Date.now()) return;
    const timer = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(timer);
  }, [at]);
  return Math.max(0, Math.ceil((at - now) / 1000));
}

/** Human text for a failed code check; `locked` when a new code is needed. */
function codeError(error: unknown): { message: string; locked: boolean } | null {
  if (!(error instanceof ApiError)) return null;
  switch (error.code) {
    case 'otp_invalid': {
      const left = error.details.attempts_left;
      const tail = typeof left === 'number' ? ` ${left} ${left === 1 ? 'attempt' : 'attempts'} left.` : '';
      return { message: `That code is not correct.${tail}`, locked: false };
    }
    case 'otp_expired':
      return { message: 'This code has expired. Send a new code.', locked: true };
    case 'otp_attempts_exceeded':
      return { message: 'Too many wrong codes. Send a new code.', locked: true };
    case 'account_disabled':
      return { message: 'This account is disabled. Ask the administrator.', locked: true };
    default:
      return null;
  }
}

export default function LoginPage() {
  const { status, requestCode, login } = useAuth();
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const next = safeNext(params.get('next'));

  const [identifier, setIdentifier] = useState('');
  const [identifierError, setIdentifierError] = useState<string | null>(null);
  const [requestError, setRequestError] = useState<unknown>(null);
  const [sent, setSent] = useState<(OtpAccepted & { to: string }) | null>(null);
  const [requesting, setRequesting] = useState(false);
  const [resendAt, setResendAt] = useState(0);

  const [code, setCode] = useState('');
  const [verifying, setVerifying] = useState(false);
  const [verifyError, setVerifyError] = useState<unknown>(null);
  const [locked, setLocked] = useState(false);
  const codeRef = useRef<HTMLInputElement>(null);
  const lastTried = useRef('');
  const codeId = useId();
  const resendIn = useCountdown(resendAt);

  useEffect(() => {
    if (sent) codeRef.current?.focus();
  }, [sent]);

  // After a wrong code the field is cleared and enabled again: put the cursor back in it.
  useEffect(() => {
    if (!verifying && verifyError !== null && !locked) codeRef.current?.focus();
  }, [verifying, verifyError, locked]);

  if (status === 'signed-in') return <Navigate to={next} replace />;

  const send = async (to: string) => {
    setRequesting(true);
    setRequestError(null);
    try {
      const accepted = await requestCode(to);
      setSent({ ...accepted, to });
      setResendAt(nextRequestAt(Date.now(), accepted.requests_remaining, accepted.window_resets_at));
      setCode('');
      lastTried.current = '';
      setVerifyError(null);
      setLocked(false);
      announce(`Code sent to ${to}.`);
    } catch (error) {
      setRequestError(error);
      if (error instanceof ApiError && error.retryAfterSeconds !== null) {
        setResendAt(Date.now() + error.retryAfterSeconds * 1000);
      }
    } finally {
      setRequesting(false);
    }
  };

  const onIdentify = (event: FormEvent) => {
    event.preventDefault();
    const check = checkIdentifier(identifier);
    if (!check.ok) {
      setIdentifierError(check.message);
      return;
    }
    setIdentifierError(null);
    void send(check.value);
  };

  const verify = async (value: string) => {
    if (!sent || verifying || value.length !== CODE_LENGTH || locked) return;
    lastTried.current = value;
    setVerifying(true);
    setVerifyError(null);
    try {
      await login(sent.to, value);
      announce('Signed in.');
      navigate(next, { replace: true });
    } catch (error) {
      setVerifyError(error);
      const described = codeError(error);
      if (described?.locked) setLocked(true);
      else setCode('');
    } finally {
      setVerifying(false);
    }
  };

  const onCodeChange = (raw: string) => {
    const digits = extractCode(raw);
    setCode(digits);
    // Auto-submit once six digits are in, but not the same wrong code again.
    if (digits.length === CODE_LENGTH && digits !== lastTried.current) void verify(digits);
  };

  const onPaste = (event: ClipboardEvent<HTMLInputElement>) => {
    const digits = extractCode(event.clipboardData.getData('text'));
    if (!digits) return;
    event.preventDefault();
    onCodeChange(digits);
  };

  const onCodeSubmit = (event: FormEvent) => {
    event.preventDefault();
    if (code.length !== CODE_LENGTH) {
      setVerifyError(new ApiError(400, 'incomplete', `Enter all ${CODE_LENGTH} digits of the code.`));
      return;
    }
    void verify(code);
  };

  if (!sent) {
    const retry = requestError instanceof ApiError && requestError.code === 'rate_limited' && resendIn > 0;
    return (
      <div className="login">
        <PageHeader title="Sign in to Fimum AI" />
        <form className="card login-card" onSubmit={onIdentify} noValidate>
          <p>We send you a one-time code: no password to remember. New here? The same steps create your account.</p>
          <TextField
            label="E-mail address or phone number"
            name="identifier"
            type="text"
            inputMode="email"
            autoComplete="username"
            autoCapitalize="none"
            spellCheck={false}
            required
            value={identifier}
            onChange={(event) => setIdentifier(event.target.value)}
            hint="Phone numbers in international form, e.g. +14155550123 (the code comes by SMS)."
            error={identifierError}
          />
          {requestError !== null && <ErrorMessage error={requestError} />}
          <Button type="submit" variant="primary" busy={requesting} disabled={retry}>
            {retry ? `Send code (wait ${formatCountdown(resendIn)})` : 'Send code'}
          </Button>
        </form>
        <p className="muted login-foot">
          By signing in you accept the <Link to="/about#terms">terms of use</Link>.
        </p>
      </div>
    );
  }

  const described = codeError(verifyError);
  const note = deliveryNote(sent.delivery, sent.channel);
  const errorId = `${codeId}-error`;
  return (
    <div className="login">
      <PageHeader title="Enter your code" />
      <form className="card login-card" onSubmit={onCodeSubmit} noValidate>
        <p>
          We sent a {CODE_LENGTH}-digit code to <strong>{sent.to}</strong>. It is valid for {formatDuration(sent.expires_in)}.
        </p>
        {note && (
          <Alert tone="info" title="Where is the code?">
            <p>{note}</p>
          </Alert>
        )}
        <div className="field">
          <label htmlFor={codeId}>{CODE_LENGTH}-digit code</label>
          <input
            ref={codeRef}
            id={codeId}
            className="code-input"
            name="code"
            type="text"
            inputMode="numeric"
            autoComplete="one-time-code"
            pattern="[0-9]*"
            maxLength={CODE_LENGTH + 6}
            value={code}
            disabled={verifying || locked}
            aria-invalid={verifyError !== null || undefined}
            aria-describedby={verifyError !== null ? errorId : undefined}
            onChange={(event) => onCodeChange(event.target.value)}
            onPaste={onPaste}
          />
        </div>
        {verifyError !== null &&
          (described || (verifyError instanceof ApiError && verifyError.code === 'incomplete') ? (
            <Alert tone="error" id={errorId} title={described?.message ?? (verifyError as ApiError).message} />
          ) : (
            <ErrorMessage error={verifyError} id={errorId} />
          ))}
        <div className="button-row">
          <Button type="submit" variant="primary" busy={verifying} disabled={locked}>
            Sign in
          </Button>
          <Button onClick={() => void send(sent.to)} busy={requesting} disabled={resendIn > 0}>
            {resendIn > 0 ? `Send a new code (in ${formatCountdown(resendIn)})` : 'Send a new code'}
          </Button>
        </div>
        {requestError !== null && <ErrorMessage error={requestError} />}
        <p className="login-switch">
          <Button
            variant="ghost"
            size="small"
            onClick={() => {
              setSent(null);
              setRequestError(null);
              setVerifyError(null);
            }}
          >
            Use a different e-mail address or phone number
          </Button>
        </p>
      </form>
    </div>
  );
}
