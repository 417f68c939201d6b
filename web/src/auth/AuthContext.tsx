import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import {
  api,
  clearSession,
  hasRefreshCookie,
  onSessionEnded,
  refreshSession,
  setSession,
} from '../api/client';
import type { Me, OtpAccepted, SignedIn } from '../api/types';

export type AuthStatus = 'loading' | 'signed-in' | 'signed-out';

export interface AuthValue {
  /** The /api/v1/me answer: user, tier, limits, today's usage. */
  user: Me | null;
  status: AuthStatus;
  /** Step 1: ask for a code (e-mail address or +E.164 phone number). */
  requestCode: (identifier: string) => Promise<OtpAccepted>;
  /** Step 2: exchange the code for a session. */
  login: (identifier: string, code: string) => Promise<void>;
  /** Re-read /me (after generating images, the usage changed). */
  reload: () => Promise<void>;
  logout: () => Promise<void>;
  logoutEverywhere: () => Promise<void>;
}

const AuthContext = createContext<AuthValue | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const [user, setUser] = useState<Me | null>(null);
  const [status, setStatus] = useState<AuthStatus>('loading');

  const reload = useCallback(async () => {
    const me = await api<Me>('/api/v1/me');
    setUser(me);
    setStatus('signed-in');
  }, []);

  // On start: a session cookie means a silent refresh can sign us in without a code.
  useEffect(() => {
    let cancelled = false;
    const start = async () => {
      if (hasRefreshCookie() && (await refreshSession())) {
        try {
          const me = await api<Me>('/api/v1/me');
          if (!cancelled) {
            setUser(me);
            setStatus('signed-in');
          }
          return;
        } catch {
          // fall through: signed out
        }
      }
      if (!cancelled) setStatus('signed-out');
    };
    void start();
    return () => {
      cancelled = true;
    };
  }, []);

  useEffect(
    () =>
      onSessionEnded(() => {
        setUser(null);
        setStatus('signed-out');
      }),
    [],
  );

  const requestCode = useCallback(
    (identifier: string) =>
      api<OtpAccepted>('/api/v1/auth/otp/request', { json: { identifier: identifier.trim() } }),
    [],
  );

  const login = useCallback(
    async (identifier: string, code: string) => {
      const signedIn = await api<SignedIn>('/api/v1/auth/otp/verify', {
        json: { identifier: identifier.trim(), code },
      });
      setSession(signedIn);
      await reload();
    },
    [reload],
  );

  const endLocally = useCallback(() => {
    clearSession();
    setUser(null);
    setStatus('signed-out');
  }, []);

  const logout = useCallback(async () => {
    try {
      await api<void>('/api/v1/auth/logout', { method: 'POST' });
    } finally {
      endLocally();
    }
  }, [endLocally]);

  const logoutEverywhere = useCallback(async () => {
    await api<void>('/api/v1/auth/logout-all', { method: 'POST' });
    endLocally();
  }, [endLocally]);

  const value = useMemo<AuthValue>(
    () => ({ user, status, requestCode, login, reload, logout, logoutEverywhere }),
    [user, status, requestCode, login, reload, logout, logoutEverywhere],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthValue {
  const value = useContext(AuthContext);
  if (!value) throw new Error('useAuth() needs <AuthProvider> above it');
  return value;
}
