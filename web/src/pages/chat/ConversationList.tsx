import { useState, type FormEvent } from 'react';
import type { Conversation } from '../../chat/conversations';
import { Button } from '../../components/Button';
import { formatTime } from './format';

interface Props {
  conversations: Conversation[];
  currentId: string | null;
  query: string;
  loading: boolean;
  onQuery: (query: string) => void;
  onOpen: (id: string) => void;
  onNew: () => void;
  onRename: (id: string, title: string) => Promise<void>;
  onDelete: (conversation: Conversation) => void;
  onDeleteAll: () => void;
  onExportAll: (format: 'markdown' | 'json') => void;
}

function RenameForm({ conversation, onDone, onRename }: { conversation: Conversation; onDone: () => void; onRename: Props['onRename'] }) {
  const [title, setTitle] = useState(conversation.title);
  const [busy, setBusy] = useState(false);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!title.trim()) return;
    setBusy(true);
    try {
      await onRename(conversation.id, title.trim());
      onDone();
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="conversation-rename" onSubmit={(event) => void submit(event)}>
      <label className="visually-hidden" htmlFor={`rename-${conversation.id}`}>
        New title for “{conversation.title}”
      </label>
      <input
        id={`rename-${conversation.id}`}
        value={title}
        maxLength={200}
        // eslint-disable-next-line jsx-a11y/no-autofocus -- the user asked to rename this one: focus goes to its field
        autoFocus
        onChange={(event) => setTitle(event.target.value)}
        onKeyDown={(event) => {
          if (event.key === 'Escape') onDone();
        }}
      />
      <Button size="small" type="submit" variant="primary" busy={busy}>
        Save
      </Button>
      <Button size="small" onClick={onDone}>
        Cancel
      </Button>
    </form>
  );
}

/** The conversation list: new, search, open, rename, delete, delete all, export all. */
export function ConversationList(props: Props) {
  const { conversations, currentId, query, loading } = props;
  const [renaming, setRenaming] = useState<string | null>(null);
  return (
    <nav className="conversation-panel" aria-label="Conversations">
      <Button variant="primary" onClick={props.onNew} className="conversation-new">
        New conversation
      </Button>
      <div className="field conversation-search">
        <label htmlFor="conversation-search">Search conversations</label>
        <input id="conversation-search" type="search" value={query} onChange={(event) => props.onQuery(event.target.value)} />
      </div>
      {conversations.length === 0 ? (
        <p className="muted">{loading ? 'Loading…' : query ? 'No conversation matches.' : 'No conversations yet.'}</p>
      ) : (
        <ul className="conversation-list">
          {conversations.map((conversation) => (
            <li key={conversation.id} className={conversation.id === currentId ? 'conversation-item is-current' : 'conversation-item'}>
              {renaming === conversation.id ? (
                <RenameForm conversation={conversation} onRename={props.onRename} onDone={() => setRenaming(null)} />
              ) : (
                <>
                  <button
                    type="button"
                    className="conversation-open"
                    aria-current={conversation.id === currentId ? 'page' : undefined}
                    onClick={() => props.onOpen(conversation.id)}
                  >
                    <span className="conversation-title">{conversation.title || 'Untitled'}</span>
                    <time className="conversation-time" dateTime={conversation.updated_at}>
                      {formatTime(conversation.updated_at)}
                    </time>
                  </button>
                  <span className="conversation-actions">
                    <Button size="small" variant="ghost" onClick={() => setRenaming(conversation.id)} aria-label={`Rename “${conversation.title}”`}>
                      Rename
                    </Button>
                    <Button size="small" variant="ghost" onClick={() => props.onDelete(conversation)} aria-label={`Delete “${conversation.title}”`}>
                      Delete
                    </Button>
                  </span>
                </>
              )}
            </li>
          ))}
        </ul>
      )}
      <details className="conversation-more">
        <summary>All conversations</summary>
        <div className="button-row">
          <Button size="small" onClick={() => props.onExportAll('markdown')}>
            Export all (Markdown)
          </Button>
          <Button size="small" onClick={() => props.onExportAll('json')}>
            Export all (JSON)
          </Button>
          <Button size="small" variant="danger" onClick={props.onDeleteAll} disabled={conversations.length === 0 && !query}>
            Delete all…
          </Button>
        </div>
      </details>
    </nav>
  );
}
