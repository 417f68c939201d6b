import { useCallback, useEffect, useId, useRef, useState, type FormEvent } from 'react';
import { api } from '../../api/client';
import type { ApiKey, Me, NewApiKey, Usage } from '../../api/types';
import { useAuth } from '../../auth/AuthContext';
import { announce } from '../../components/announce';
import { Button } from '../../components/Button';
import { ConfirmDialog } from '../../components/ConfirmDialog';
import { Alert, ErrorMessage } from '../../components/ErrorMessage';
import { TextField } from '../../components/Field';
import { formatDateTime, formatReset } from '../../components/format';
import { PageHeader } from '../../components/PageHeader';
import { Spinner } from '../../components/Spinner';
import './account.css';

const QUOTA_NAMES: Record<string, string> = { images: 'Images', research: 'Research reports' };

function quotaName(kind: string): string {
  return QUOTA_NAMES[kind] ?? kind.replace(/_/g, ' ');
}

function UsageRow({ kind, usage }: { kind: string; usage: Usage }) {
  const name = quotaName(kind);
  const unlimited = usage.limit === null;
  const exhausted = usage.remaining === 0;
  return (
    <div className="usage-row">
      <div className="usage-head">
        <span className="usage-name">{name}</span>
        <span className="usage-numbers">
          {unlimited ? `${usage.used} today · unlimited` : `${usage.used} of ${usage.limit} used`}
        </span>
      </div>
      {!unlimited && (
        <progress className={exhausted ? 'usage-bar usage-bar-full' : 'usage-bar'} max={usage.limit ?? 0} value={usage.used} aria-label={`${name} used today`}>
          {usage.used} of {usage.limit}
        </progress>
      )}
      <p className={exhausted ? 'usage-note usage-note-full' : 'usage-note'}>
        {unlimited
          ? 'No daily limit on your plan.'
          : exhausted
            ? `Limit reached. It resets at ${formatReset(usage.resets_at)}.`
            : `${usage.remaining} left today; resets at ${formatReset(usage.resets_at)}.`}
      </p>
    </div>
  );
}

function PlanSection({ me }: { me: Me }) {
  const perMinute = me.limits.requests_per_minute;
  return (
    <section className="card" aria-labelledby="plan-heading">
      <h2 id="plan-heading">Plan and usage</h2>
      <dl className="facts">
        <div>
          <dt>Signed in as</dt>
          <dd>{me.user.email ?? me.user.phone}</dd>
        </div>
        <div>
          <dt>Plan</dt>
          <dd>
            <span className="badge badge-tier">{me.tier}</span>
            {me.user.is_admin && <span className="badge">administrator</span>}
          </dd>
        </div>
        <div>
          <dt>API requests</dt>
          <dd>{perMinute === null || perMinute === undefined ? 'unlimited' : `${perMinute} per minute`}</dd>
        </div>
        <div>
          <dt>Member since</dt>
          <dd>{formatDateTime(me.user.created_at)}</dd>
        </div>
      </dl>
      <h3>Today</h3>
      {Object.entries(me.usage).map(([kind, usage]) => (
        <UsageRow key={kind} kind={kind} usage={usage} />
      ))}
    </section>
  );
}

function NewKeyNotice({ created, onDone }: { created: NewApiKey; onDone: () => void }) {
  const [copied, setCopied] = useState<'yes' | 'no' | null>(null);
  const fieldId = useId();
  const inputRef = useRef<HTMLInputElement>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(created.key);
      setCopied('yes');
      announce('API key copied to the clipboard.');
    } catch {
      // Clipboard refused (insecure origin, permissions): select it for a manual copy.
      inputRef.current?.select();
      setCopied('no');
    }
  };
  return (
    <Alert tone="success" title={`Key "${created.name}" created. Copy it now: it is shown only once.`} urgent>
      <div className="new-key">
        <label htmlFor={fieldId} className="visually-hidden">
          New API key
        </label>
        <input id={fieldId} ref={inputRef} className="new-key-value" readOnly value={created.key} onFocus={(event) => event.target.select()} />
        <Button onClick={() => void copy()}>{copied === 'yes' ? 'Copied' : 'Copy key'}</Button>
        <Button variant="ghost" onClick={onDone}>
          Done
        </Button>
      </div>
      {copied === 'no' && <p>Copying was not allowed here: the key is selected, press Ctrl+C (⌘C).</p>}
      <p>
        Use it as <code>Authorization: Bearer {created.prefix}…</code> with the API or any OpenAI-compatible client.
      </p>
    </Alert>
  );
}

function ApiKeysSection() {
  const [keys, setKeys] = useState<ApiKey[] | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [name, setName] = useState('');
  const [nameError, setNameError] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  const [createError, setCreateError] = useState<unknown>(null);
  const [created, setCreated] = useState<NewApiKey | null>(null);
  const [revoking, setRevoking] = useState<ApiKey | null>(null);
  const [revokeBusy, setRevokeBusy] = useState(false);
  const [revokeError, setRevokeError] = useState<unknown>(null);
  const nameRef = useRef<HTMLInputElement>(null);

  const load = useCallback(async () => {
    try {
      const page = await api<{ items: ApiKey[] }>('/api/v1/me/api-keys');
      setKeys(page.items);
      setLoadError(null);
    } catch (error) {
      setLoadError(error);
    }
  }, []);

  useEffect(() => {
    void load();
  }, [load]);

  const create = async (event: FormEvent) => {
    event.preventDefault();
    const label = name.trim();
    if (!label) {
      setNameError('Give the key a name, e.g. the app that will use it.');
      nameRef.current?.focus();
      return;
    }
    setNameError(null);
    setCreating(true);
    setCreateError(null);
    try {
      const key = await api<NewApiKey>('/api/v1/me/api-keys', { json: { name: label } });
      setCreated(key);
      setName('');
      await load();
    } catch (error) {
      setCreateError(error);
    } finally {
      setCreating(false);
    }
  };

  const revoke = async () => {
    if (!revoking) return;
    setRevokeBusy(true);
    setRevokeError(null);
    try {
      await api<void>(`/api/v1/me/api-keys/${encodeURIComponent(revoking.id)}`, { method: 'DELETE' });
      announce(`API key ${revoking.name} revoked.`);
      setRevoking(null);
      if (created?.id === revoking.id) setCreated(null);
      await load();
    } catch (error) {
      setRevokeError(error);
    } finally {
      setRevokeBusy(false);
    }
  };

  return (
    <section className="card" aria-labelledby="keys-heading">
      <h2 id="keys-heading">API keys</h2>
      <p className="muted">
        Personal keys for scripts and other apps (Open WebUI, the OpenAI SDK). A key acts as you, with your plan's limits.
      </p>
      {created && <NewKeyNotice created={created} onDone={() => setCreated(null)} />}
      <form className="key-form" onSubmit={(event) => void create(event)} noValidate>
        <TextField
          ref={nameRef}
          label="Key name"
          name="key-name"
          maxLength={100}
          value={name}
          onChange={(event) => setName(event.target.value)}
          placeholder="e.g. laptop"
          error={nameError}
          fieldClassName="key-name"
        />
        <Button type="submit" variant="primary" busy={creating}>
          Create key
        </Button>
      </form>
      <ErrorMessage error={createError} />
      <ErrorMessage error={loadError} />
      {keys === null && loadError === null && <Spinner label="Loading your API keys" />}
      {keys !== null && keys.length === 0 && <p>You have no API keys.</p>}
      {keys !== null && keys.length > 0 && (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Your API keys</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Key</th>
                <th scope="col">Created</th>
                <th scope="col">Last used</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {keys.map((key) => (
                <tr key={key.id}>
                  <td>{key.name}</td>
                  <td>
                    <code>{key.prefix}…</code>
                  </td>
                  <td>{formatDateTime(key.created_at)}</td>
                  <td>{key.last_used_at ? formatDateTime(key.last_used_at) : 'never'}</td>
                  <td>
                    <Button variant="danger" size="small" aria-label={`Revoke ${key.name}`} onClick={() => setRevoking(key)}>
                      Revoke
                    </Button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <ConfirmDialog
        open={revoking !== null}
        title={`Revoke the key "${revoking?.name ?? ''}"?`}
        confirmLabel="Revoke key"
        danger
        busy={revokeBusy}
        onConfirm={() => void revoke()}
        onCancel={() => {
          setRevoking(null);
          setRevokeError(null);
        }}
      >
        <p>Apps using it stop working at once. This cannot be undone.</p>
        <ErrorMessage error={revokeError} />
      </ConfirmDialog>
    </section>
  );
}

function SessionsSection() {
  const { logout, logoutEverywhere } = useAuth();
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const everywhere = async () => {
    setBusy(true);
    setError(null);
    try {
      await logoutEverywhere();
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  };
  return (
    <section className="card" aria-labelledby="sessions-heading">
      <h2 id="sessions-heading">Sessions</h2>
      <p className="muted">Signed in on a computer you no longer use? End every session, on every device.</p>
      <div className="button-row">
        <Button onClick={() => void logout()}>Sign out</Button>
        <Button variant="danger" onClick={() => setConfirming(true)}>
          Sign out everywhere
        </Button>
      </div>
      <ErrorMessage error={error} />
      <ConfirmDialog
        open={confirming}
        title="Sign out everywhere?"
        confirmLabel="Sign out everywhere"
        danger
        busy={busy}
        onConfirm={() => void everywhere()}
        onCancel={() => setConfirming(false)}
      >
        <p>Every browser and app signed in with a code is signed out. API keys keep working.</p>
      </ConfirmDialog>
    </section>
  );
}

export default function AccountPage() {
  const { user, reload } = useAuth();
  const [error, setError] = useState<unknown>(null);

  // The usage numbers change as the user works elsewhere: re-read them on every visit.
  useEffect(() => {
    reload().catch(setError);
  }, [reload]);

  return (
    <>
      <PageHeader title="Account" />
      <ErrorMessage error={error} />
      {user ? <PlanSection me={user} /> : <Spinner label="Loading your account" />}
      <ApiKeysSection />
      <SessionsSection />
    </>
  );
}
