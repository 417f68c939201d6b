import { keyboardScrollable } from './scrollable';
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { useSearchParams } from 'react-router';
import { ApiError, api } from '../../api/client';
import { applyEvent, emptyAnswer, endAnswer, type Answer } from '../../chat/answer';
import {
  deleteAllConversations,
  deleteConversation,
  exportPath,
  getConversation,
  listConversations,
  patchConversation,
  provisionalTitle,
  removeConversation,
  renameConversation,
  stopAnswer,
  threadFromConversation,
  updateAnswerItem,
  upsertConversation,
  type Conversation,
  type ThreadItem,
} from '../../chat/conversations';
import { postStream } from '../../chat/stream';
import { announce } from '../../components/announce';
import { Button } from '../../components/Button';
import { ConfirmDialog } from '../../components/ConfirmDialog';
import { Alert, ErrorMessage, describeError } from '../../components/ErrorMessage';
import { PageHeader } from '../../components/PageHeader';
import { fetchAuthorized } from '../../api/fetchAuthorized';
import { AnswerView } from './AnswerView';
import { AttachedImage } from './ChatImage';
import { Composer, type ChatMode, type SendRequest } from './Composer';
import { ConversationList } from './ConversationList';
import { formatTime, modelLabel } from './format';
import { Markdown } from './Markdown';
import { ModelPicker, type ModelsResponse } from './ModelPicker';
import './chat.css';

interface Streaming {
  key: string;
  controller: AbortController;
  conversationId: string | null;
}

let localKey = 0;

async function download(path: string, fallbackName: string): Promise<void> {
  const response = await fetchAuthorized(path);
  const blob = await response.blob();
  const disposition = response.headers.get('Content-Disposition') ?? '';
  const name = /filename="?([^";]+)"?/.exec(disposition)?.[1] ?? fallbackName;
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export default function ChatPage() {
  const [params, setParams] = useSearchParams();
  const currentId = params.get('c');
  const [models, setModels] = useState<ModelsResponse | null>(null);
  const [modelsError, setModelsError] = useState<unknown>(null);
  const [notConfigured, setNotConfigured] = useState<string | null>(null);
  const [model, setModel] = useState('fimum/auto');
  const [mode, setMode] = useState<ChatMode>('chat');
  const [conversations, setConversations] = useState<Conversation[]>([]);
  const [listLoading, setListLoading] = useState(true);
  const [query, setQuery] = useState('');
  const [items, setItems] = useState<ThreadItem[]>([]);
  const [threadError, setThreadError] = useState<unknown>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const [streaming, setStreaming] = useState<Streaming | null>(null);
  const [incoming, setIncoming] = useState<File[]>([]);
  const [confirmDelete, setConfirmDelete] = useState<Conversation | null>(null);
  const [confirmDeleteAll, setConfirmDeleteAll] = useState(false);
  const [busy, setBusy] = useState(false);
  const thread = useRef<HTMLDivElement>(null);
  const stickToBottom = useRef(true);
  /** A conversation this page just created: its thread is already on screen, do not reload it. */
  const justCreated = useRef<string | null>(null);
  const streamingRef = useRef<Streaming | null>(null);
  streamingRef.current = streaming;

  const names = useMemo(() => new Map((models?.models ?? []).map((m) => [m.id, m.name])), [models]);

  const loadModels = useCallback(() => {
    api<ModelsResponse>('/api/v1/models').then(
      (answer) => {
        setModels(answer);
        setNotConfigured(answer.configured ? null : (answer.hint ?? 'No chat model endpoint is configured.'));
      },
      (error: unknown) => setModelsError(error),
    );
  }, []);
  useEffect(loadModels, [loadModels]);

  const refreshList = useCallback((search: string, signal?: AbortSignal) => {
    setListLoading(true);
    listConversations(search, signal).then(
      (answer) => {
        setConversations(answer.conversations);
        setListLoading(false);
      },
      (error: unknown) => {
        if (error instanceof DOMException && error.name === 'AbortError') return;
        setActionError(error);
        setListLoading(false);
      },
    );
  }, []);

  // Search as the user types (a short pause first, so each keystroke is not a request).
  useEffect(() => {
    const controller = new AbortController();
    const timer = window.setTimeout(() => refreshList(query, controller.signal), query ? 250 : 0);
    return () => {
      window.clearTimeout(timer);
      controller.abort();
    };
  }, [query, refreshList]);

  // Open the conversation named in the URL.
  useEffect(() => {
    if (!currentId) {
      if (!streamingRef.current) setItems([]);
      return;
    }
    if (justCreated.current === currentId) return;
    streamingRef.current?.controller.abort();
    const controller = new AbortController();
    setThreadError(null);
    setItems([]);
    getConversation(currentId, controller.signal).then(
      (detail) => {
        setItems(threadFromConversation(detail));
        stickToBottom.current = true;
        if (detail.model && detail.model !== 'fimum/auto') setModel(detail.model);
      },
      (error: unknown) => {
        if (!(error instanceof DOMException && error.name === 'AbortError')) setThreadError(error);
      },
    );
    return () => controller.abort();
  }, [currentId]);

  // "Share to conversation": /chat?image=<id> attaches that gallery image to a new message.
  const sharedImage = params.get('image');
  useEffect(() => {
    if (!sharedImage) return;
    let live = true;
    fetchAuthorized(`/api/v1/images/${encodeURIComponent(sharedImage)}/file`)
      .then((response) => response.blob())
      .then((blob) => {
        if (!live) return;
        const extension = blob.type === 'image/webp' ? 'webp' : blob.type === 'image/jpeg' ? 'jpg' : 'png';
        setIncoming([new File([blob], `image-${sharedImage.slice(0, 8)}.${extension}`, { type: blob.type || 'image/png' })]);
        setParams((current) => {
          const next = new URLSearchParams(current);
          next.delete('image');
          return next;
        }, { replace: true });
      })
      .catch((error: unknown) => live && setActionError(error));
    return () => {
      live = false;
    };
  }, [sharedImage, setParams]);

  // Keep the newest text in view while the user has not scrolled up.
  useEffect(() => {
    const element = thread.current;
    if (element && stickToBottom.current) element.scrollTop = element.scrollHeight;
  }, [items]);

  const open = (id: string | null) => {
    justCreated.current = null;
    setParams(id ? { c: id } : {});
  };

  const runStream = async (key: string, initial: Answer, path: string, body: unknown, research: boolean, conversationId: string | null) => {
    const controller = new AbortController();
    const state: Streaming = { key, controller, conversationId };
    setStreaming(state);
    let answer = initial;
    const show = (next: Answer) => {
      answer = next;
      setItems((current) => updateAnswerItem(current, key, () => next));
    };
    try {
      const start = await postStream(path, body, controller.signal);
      if (start.conversationId && start.conversationId !== conversationId) {
        state.conversationId = start.conversationId;
        justCreated.current = start.conversationId;
        const now = new Date().toISOString();
        const asked = (body as { content?: string; question?: string }).content ?? (body as { question?: string }).question ?? '';
        setConversations((list) =>
          upsertConversation(list, { id: start.conversationId!, title: provisionalTitle(asked), model, created_at: now, updated_at: now }),
        );
        setParams({ c: start.conversationId });
      }
      for await (const event of start.events) show(applyEvent(answer, event));
      show(endAnswer(answer, 'error', 'The connection closed before the answer ended.'));
    } catch (error) {
      if (error instanceof DOMException && error.name === 'AbortError') {
        show(endAnswer(answer, 'cancelled'));
      } else if (error instanceof ApiError && error.code === 'chat_not_configured') {
        setNotConfigured(error.message);
        setItems((current) => current.filter((item) => item.key !== key));
      } else {
        show({ ...answer, status: 'error', error: { code: error instanceof ApiError ? error.code : 'failed', message: describeError(error).title } });
      }
    } finally {
      setStreaming(null);
    }
    const who = modelLabel(answer.model, names);
    if (answer.status === 'done') announce(`${research ? 'Research' : 'Answer'} from ${who} finished.`);
    else if (answer.status === 'cancelled') announce('Answer stopped.');
    else announce(`The answer failed: ${answer.error?.message ?? 'error'}`, 'assertive');
    refreshList(query);
    loadModels();
  };

  const send = (request: SendRequest): boolean => {
    if (streaming) return false;
    const now = new Date().toISOString();
    const userKey = `local-user-${(localKey += 1)}`;
    const answerKey = `local-answer-${localKey}`;
    const research = request.mode === 'research';
    const initial = emptyAnswer(model === 'fimum/auto' || research ? null : model);
    setItems((current) => [
      ...current,
      {
        kind: 'user',
        key: userKey,
        content: request.content,
        attachments: request.attachments.map((item) => ({ id: item.uploaded!.id, kind: item.uploaded!.kind, filename: item.uploaded!.filename })),
        createdAt: now,
      },
      { kind: 'assistant', key: answerKey, answer: initial, createdAt: now, research },
    ]);
    stickToBottom.current = true;
    if (research) {
      // Stored in the conversation like a chat turn ("new" starts one), so it is there after a reload.
      const body = { question: request.content, conversation_id: currentId ?? 'new' };
      void runStream(answerKey, initial, '/api/v1/research', body, true, currentId);
    } else {
      const body = {
        content: request.content,
        model,
        attachments: request.attachments.map((item) => item.uploaded!.id),
        mode: request.mode === 'agent' ? 'agent' : 'chat',
        include_logo: request.mode === 'agent' && request.includeLogo,
      };
      void runStream(answerKey, initial, `/api/v1/chat/${currentId ? encodeURIComponent(currentId) : 'new'}/messages`, body, false, currentId);
    }
    return true;
  };

  const stop = () => {
    const current = streaming;
    if (!current) return;
    if (current.conversationId) {
      // The server ends the stream with `done: cancelled` and keeps the partial answer; closing the
      // connection is the fallback (another replica, or no answer to the stop request).
      stopAnswer(current.conversationId).catch(() => current.controller.abort());
      window.setTimeout(() => {
        if (streamingRef.current === current) current.controller.abort();
      }, 3000);
    } else {
      current.controller.abort();
    }
  };

  const rename = async (id: string, title: string) => {
    try {
      const renamed = await renameConversation(id, title);
      setConversations((list) => patchConversation(list, id, renamed));
      announce(`Renamed to ${renamed.title}`);
    } catch (error) {
      setActionError(error);
      throw error;
    }
  };

  const remove = async () => {
    const target = confirmDelete;
    if (!target) return;
    setBusy(true);
    try {
      await deleteConversation(target.id);
      setConversations((list) => removeConversation(list, target.id));
      if (target.id === currentId) open(null);
      announce(`Deleted “${target.title}”`);
      setConfirmDelete(null);
    } catch (error) {
      setActionError(error);
    } finally {
      setBusy(false);
    }
  };

  const removeAll = async () => {
    setBusy(true);
    try {
      const erased = await deleteAllConversations();
      setConversations([]);
      open(null);
      setItems([]);
      announce(`Deleted ${erased.conversations} conversation${erased.conversations === 1 ? '' : 's'}`);
      setConfirmDeleteAll(false);
    } catch (error) {
      setActionError(error);
    } finally {
      setBusy(false);
    }
  };

  const exportFile = (id: string | null, format: 'markdown' | 'json') => {
    download(exportPath(id, format), `conversation.${format === 'json' ? 'json' : 'md'}`).catch((error: unknown) => setActionError(error));
  };

  const current = conversations.find((item) => item.id === currentId) ?? null;

  return (
    <>
      <PageHeader title="Chat" />
      {notConfigured && (
        <Alert tone="warning" className="chat-not-configured" title={notConfigured} urgent={false} />
      )}
      <ErrorMessage error={actionError} />
      <div className="chat-layout">
        <ConversationList
          conversations={conversations}
          currentId={currentId}
          query={query}
          loading={listLoading}
          onQuery={setQuery}
          onOpen={(id) => open(id)}
          onNew={() => open(null)}
          onRename={rename}
          onDelete={setConfirmDelete}
          onDeleteAll={() => setConfirmDeleteAll(true)}
          onExportAll={(format) => exportFile(null, format)}
        />
        <section className="chat-main" aria-labelledby="chat-thread-title">
          <div className="chat-toolbar">
            <h2 id="chat-thread-title">{current?.title || (currentId ? 'Conversation' : 'New conversation')}</h2>
            {currentId && (
              <span className="button-row">
                <Button size="small" onClick={() => exportFile(currentId, 'markdown')}>
                  Export Markdown
                </Button>
                <Button size="small" onClick={() => exportFile(currentId, 'json')}>
                  Export JSON
                </Button>
              </span>
            )}
          </div>
          <div
            className="chat-thread"
            ref={thread}
            role="log"
            aria-live="off"
            aria-label="Messages"
            {...keyboardScrollable}
            onScroll={(event) => {
              const element = event.currentTarget;
              stickToBottom.current = element.scrollHeight - element.scrollTop - element.clientHeight < 80;
            }}
          >
            <ErrorMessage error={threadError} />
            {items.length === 0 && !threadError && (
              <p className="chat-empty muted">
                {currentId ? 'Loading…' : 'Start a conversation: ask a question, attach an image or a document, or switch to Agent for code with images, or to Deep research.'}
              </p>
            )}
            {items.map((item) =>
              item.kind === 'user' ? (
                <article key={item.key} className="bubble bubble-user" aria-label="Your message">
                  <header className="bubble-meta">
                    <span>You</span>
                    <time dateTime={item.createdAt}>{formatTime(item.createdAt)}</time>
                  </header>
                  {item.attachments.length > 0 && (
                    <ul className="bubble-attachments" aria-label="Attachments">
                      {item.attachments.map((attachment) => (
                        <li key={attachment.id}>
                          {attachment.kind === 'image' ? (
                            <AttachedImage attachmentId={attachment.id} filename={attachment.filename ?? attachment.id} />
                          ) : (
                            <>Document: {attachment.filename ?? attachment.id}</>
                          )}
                        </li>
                      ))}
                    </ul>
                  )}
                  {item.content && <Markdown text={item.content} />}
                </article>
              ) : (
                <AnswerView key={item.key} answer={item.answer} createdAt={item.createdAt} names={names} research={item.research} />
              ),
            )}
          </div>
          {modelsError !== null && <ErrorMessage error={modelsError} />}
          <Composer
            streaming={streaming !== null}
            disabled={notConfigured !== null}
            mode={mode}
            onMode={setMode}
            onSend={send}
            onStop={stop}
            incoming={incoming}
            onIncomingTaken={() => setIncoming([])}
            modelPicker={<ModelPicker models={models} value={model} onChange={setModel} />}
          />
        </section>
      </div>
      <ConfirmDialog
        open={confirmDelete !== null}
        title="Delete this conversation?"
        confirmLabel="Delete"
        danger
        busy={busy}
        onConfirm={() => void remove()}
        onCancel={() => setConfirmDelete(null)}
      >
        <p>“{confirmDelete?.title}” and its messages and attachments are deleted for good.</p>
      </ConfirmDialog>
      <ConfirmDialog
        open={confirmDeleteAll}
        title="Delete every conversation?"
        confirmLabel="Delete all"
        danger
        busy={busy}
        onConfirm={() => void removeAll()}
        onCancel={() => setConfirmDeleteAll(false)}
      >
        <p>All your conversations, messages and attachments are erased. There is no undo; export them first if you want a copy.</p>
      </ConfirmDialog>
    </>
  );
}
