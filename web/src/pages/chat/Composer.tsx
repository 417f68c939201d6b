import { useDeferredValue, useEffect, useId, useRef, useState, type DragEvent, type KeyboardEvent } from 'react';
import { ACCEPT, attachmentProblem, isImageFile, MAX_ATTACHMENTS, uploadAttachment, type Uploaded } from '../../chat/attachments';
import { describeError } from '../../components/ErrorMessage';
import { Button } from '../../components/Button';
import { announce } from '../../components/announce';
import { Markdown } from './Markdown';
import { useVoiceInput, VOICE_SHORTCUT } from './voice';

export type ChatMode = 'chat' | 'agent' | 'research';

export interface PendingAttachment {
  key: string;
  name: string;
  size: number;
  image: boolean;
  previewUrl: string | null;
  status: 'uploading' | 'ready' | 'failed';
  uploaded: Uploaded | null;
  error: string | null;
}

export interface SendRequest {
  content: string;
  attachments: PendingAttachment[];
  mode: ChatMode;
  includeLogo: boolean;
}

interface Props {
  streaming: boolean;
  disabled: boolean;
  mode: ChatMode;
  onMode: (mode: ChatMode) => void;
  onSend: (request: SendRequest) => boolean;
  onStop: () => void;
  /** Files to attach from outside (a gallery image shared to the chat). */
  incoming: File[];
  onIncomingTaken: () => void;
  modelPicker: React.ReactNode;
}

let nextKey = 0;

export function Composer({ streaming, disabled, mode, onMode, onSend, onStop, incoming, onIncomingTaken, modelPicker }: Props) {
  const [draft, setDraft] = useState('');
  const [preview, setPreview] = useState(false);
  const [includeLogo, setIncludeLogo] = useState(false);
  const [attachments, setAttachments] = useState<PendingAttachment[]>([]);
  const [problems, setProblems] = useState<string[]>([]);
  const [dragging, setDragging] = useState(false);
  const textarea = useRef<HTMLTextAreaElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const deferredDraft = useDeferredValue(draft);
  const problemsId = useId();
  const hintId = useId();
  const voice = useVoiceInput((text) => setDraft((current) => (current && !current.endsWith(' ') ? `${current} ${text}` : current + text)));

  const addFiles = (files: File[]) => {
    const found: string[] = [];
    const accepted: [PendingAttachment, File][] = [];
    let room = MAX_ATTACHMENTS - attachments.length;
    for (const file of files) {
      const problem = attachmentProblem(file);
      if (problem) {
        found.push(problem);
        continue;
      }
      if (room <= 0) {
        found.push(`${file.name}: at most ${MAX_ATTACHMENTS} files per message.`);
        continue;
      }
      room -= 1;
      const image = isImageFile(file);
      accepted.push([{
        key: `a${(nextKey += 1)}`,
        name: file.name,
        size: file.size,
        image,
        previewUrl: image ? URL.createObjectURL(file) : null,
        status: 'uploading',
        uploaded: null,
        error: null,
      }, file]);
    }
    setProblems(found);
    if (found.length) announce(found.join(' '), 'assertive');
    if (!accepted.length) return;
    setAttachments((current) => [...current, ...accepted.map(([item]) => item)]);
    accepted.forEach(([item, file]) => {
      uploadAttachment(file).then(
        (uploaded) => {
          setAttachments((current) => current.map((a) => (a.key === item.key ? { ...a, status: 'ready', uploaded } : a)));
          announce(`${item.name} attached`);
        },
        (error: unknown) => {
          const message = describeError(error).title;
          setAttachments((current) => current.map((a) => (a.key === item.key ? { ...a, status: 'failed', error: message } : a)));
          announce(`${item.name} could not be attached: ${message}`, 'assertive');
        },
      );
    });
  };

  useEffect(() => {
    if (incoming.length === 0) return;
    addFiles(incoming);
    onIncomingTaken();
    // eslint-disable-next-line react-hooks/exhaustive-deps -- run once per batch handed in
  }, [incoming]);

  const remove = (key: string) => {
    setAttachments((current) => {
      const gone = current.find((item) => item.key === key);
      if (gone?.previewUrl) URL.revokeObjectURL(gone.previewUrl);
      return current.filter((item) => item.key !== key);
    });
  };

  const uploading = attachments.some((item) => item.status === 'uploading');
  const canSend = !disabled && !streaming && !uploading && (draft.trim().length > 0 || attachments.some((a) => a.status === 'ready'));

  const send = () => {
    if (!canSend) return;
    const ready = attachments.filter((item) => item.status === 'ready');
    if (onSend({ content: draft, attachments: ready, mode, includeLogo })) {
      setDraft('');
      setAttachments([]);
      setProblems([]);
    }
  };

  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      send();
    }
  };

  useEffect(() => {
    const onShortcut = (event: globalThis.KeyboardEvent) => {
      if (event.ctrlKey && event.shiftKey && event.key.toLowerCase() === 'm' && voice.supported) {
        event.preventDefault();
        voice.toggle();
      }
    };
    window.addEventListener('keydown', onShortcut);
    return () => window.removeEventListener('keydown', onShortcut);
  }, [voice]);

  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    setDragging(false);
    if (disabled) return;
    addFiles(Array.from(event.dataTransfer.files));
  };

  return (
    <form
      className={dragging ? 'composer is-dragging' : 'composer'}
      aria-label="Write a message"
      onSubmit={(event) => {
        event.preventDefault();
        send();
      }}
      onDragOver={(event) => {
        if (event.dataTransfer.types.includes('Files')) {
          event.preventDefault();
          setDragging(true);
        }
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={onDrop}
    >
      <div className="composer-options">
        <fieldset className="composer-mode">
          <legend className="visually-hidden">Mode</legend>
          {(
            [
              ['chat', 'Chat'],
              ['agent', 'Agent (code, images, tools)'],
              ['research', 'Deep research'],
            ] as const
          ).map(([value, label]) => (
            <label key={value} className="composer-mode-option">
              <input type="radio" name="chat-mode" value={value} checked={mode === value} onChange={() => onMode(value)} />
              {label}
            </label>
          ))}
        </fieldset>
        {mode === 'agent' && (
          <label className="composer-check">
            <input type="checkbox" checked={includeLogo} onChange={(event) => setIncludeLogo(event.target.checked)} /> Include a logo
          </label>
        )}
        {mode !== 'research' && modelPicker}
      </div>
      {attachments.length > 0 && (
        <ul className="attachment-list" aria-label="Attachments">
          {attachments.map((item) => (
            <li key={item.key} className={`attachment attachment-${item.status}`}>
              {item.previewUrl && <img src={item.previewUrl} alt="" width={40} height={40} />}
              <span className="attachment-name">{item.name}</span>
              <span className="attachment-state">{item.status === 'uploading' ? 'uploading…' : item.status === 'failed' ? item.error : `${Math.max(1, Math.round(item.size / 1024))} kB`}</span>
              <Button size="small" variant="ghost" onClick={() => remove(item.key)} aria-label={`Remove ${item.name}`}>
                Remove
              </Button>
            </li>
          ))}
        </ul>
      )}
      {problems.length > 0 && (
        <ul id={problemsId} className="composer-problems" role="alert">
          {problems.map((problem) => (
            <li key={problem}>{problem}</li>
          ))}
        </ul>
      )}
      <label htmlFor="chat-message" className="visually-hidden">
        Message
      </label>
      <textarea
        id="chat-message"
        ref={textarea}
        rows={3}
        value={draft}
        maxLength={100_000}
        disabled={disabled}
        placeholder={mode === 'research' ? 'What should the models research?' : 'Ask anything. Markdown works; Enter sends, Shift+Enter adds a line.'}
        aria-describedby={[hintId, problems.length ? problemsId : ''].filter(Boolean).join(' ')}
        onChange={(event) => setDraft(event.target.value)}
        onKeyDown={onKeyDown}
        onPaste={(event) => {
          const files = Array.from(event.clipboardData.files);
          if (files.length) {
            event.preventDefault();
            addFiles(files);
          }
        }}
      />
      <p id={hintId} className="visually-hidden">
        Enter sends, Shift+Enter adds a line. Drop images or documents here to attach them (up to 10 MB each).
      </p>
      {preview && (
        <section className="composer-preview" aria-label="Preview">
          {deferredDraft.trim() ? <Markdown text={deferredDraft} /> : <p className="muted">Nothing to preview yet.</p>}
        </section>
      )}
      <div className="composer-bar">
        <input
          ref={fileInput}
          type="file"
          multiple
          accept={ACCEPT}
          className="visually-hidden"
          tabIndex={-1}
          aria-hidden="true"
          onChange={(event) => {
            addFiles(Array.from(event.target.files ?? []));
            event.target.value = '';
          }}
        />
        <Button size="small" onClick={() => fileInput.current?.click()} disabled={disabled || mode === 'research'}>
          Attach files
        </Button>
        <Button
          size="small"
          onClick={voice.toggle}
          disabled={!voice.supported || disabled}
          aria-pressed={voice.listening}
          aria-keyshortcuts={VOICE_SHORTCUT}
          title={voice.unsupportedReason ?? `Voice input (${VOICE_SHORTCUT.replace('Control', 'Ctrl')})`}
          aria-describedby={voice.supported ? undefined : 'voice-unavailable'}
        >
          {voice.listening ? 'Stop listening' : 'Voice'}
        </Button>
        {!voice.supported && (
          <span id="voice-unavailable" className="composer-note muted">
            {voice.unsupportedReason}
          </span>
        )}
        {voice.error && (
          <span className="composer-note" role="status">
            {voice.error}
          </span>
        )}
        <label className="composer-check">
          <input type="checkbox" checked={preview} onChange={(event) => setPreview(event.target.checked)} /> Preview
        </label>
        <span className="composer-send">
          {streaming ? (
            <Button variant="danger" onClick={onStop}>
              Stop
            </Button>
          ) : (
            <Button type="submit" variant="primary" disabled={!canSend}>
              {mode === 'research' ? 'Research' : 'Send'}
            </Button>
          )}
        </span>
      </div>
    </form>
  );
}
