/** Response shapes of the accounts API (src/fimum_ai/accounts/routes.py). */

export interface User {
  id: string;
  email: string | null;
  phone: string | null;
  tier: string;
  is_admin: boolean;
  disabled: boolean;
  created_at: string;
  last_login_at: string | null;
}

export interface Usage {
  /** Per day; null: unlimited. */
  limit: number | null;
  used: number;
  remaining: number | null;
  /** ISO 8601, UTC. */
  resets_at: string;
}

export interface Me {
  user: User;
  tier: string;
  limits: Record<string, number | null>;
  usage: Record<string, Usage>;
  auth: { via: 'jwt' | 'api_key'; expires_at: number | null };
}

export interface OtpAccepted {
  status: 'accepted';
  message: string;
  channel: 'email' | 'sms';
  /** smtp, smpp, modem or console (development: printed in the server's terminal). */
  delivery: string;
  expires_in: number;
  requests_remaining: number;
  /** Unix time (seconds) when the request window ends. */
  window_resets_at: number;
}

export interface SignedIn {
  access_token: string;
  refresh_token: string;
  token_type: 'bearer';
  expires_in: number;
  refresh_expires_in: number;
  user: User;
}

export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  created_at: string;
  last_used_at: string | null;
}

export interface NewApiKey extends ApiKey {
  /** Shown once. */
  key: string;
}
