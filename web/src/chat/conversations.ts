/** Conversations: the API calls and the pure list/thread updates the chat page applies. */
import { api } from '../api/client';
import { answerFromMessage, type Answer, type StoredAttachment, type StoredMessage } from './answer';

export interface Conversation {
  id: string;
  title: string;
  model: string;
  created_at: string;
  updated_at: string;
}

export interface ConversationDetail extends Conversation {
  messages: StoredMessage[];
}

export type ThreadItem =
  | { kind: 'user'; key: string; content: string; attachments: StoredAttachment[]; createdAt: string }
  | { kind: 'assistant'; key: string; answer: Answer; createdAt: string; research?: boolean };

const BASE = '/api/v1/chat';

export function listConversations(query = '', signal?: AbortSignal): Promise<{ conversations: Conversation[] }> {
  const params = new URLSearchParams({ limit: '200' });
  if (query.trim()) params.set('q', query.trim());
  return api(`${BASE}/conversations?${params}`, { signal });
}

export function getConversation(id: string, signal?: AbortSignal): Promise<ConversationDetail> {
  return api(`${BASE}/conversations/${encodeURIComponent(id)}`, { signal });
}

export function renameConversation(id: string, title: string): Promise<Conversation> {
  return api(`${BASE}/conversations/${encodeURIComponent(id)}`, { method: 'PATCH', json: { title } });
}

export function deleteConversation(id: string): Promise<void> {
  return api(`${BASE}/conversations/${encodeURIComponent(id)}`, { method: 'DELETE' });
}

export function deleteAllConversations(): Promise<{ conversations: number; messages: number; attachments: number }> {
  return api(`${BASE}/conversations?confirm=true`, { method: 'DELETE' });
}

export function stopAnswer(id: string): Promise<{ stopped: boolean }> {
  return api(`${BASE}/${encodeURIComponent(id)}/stop`, { method: 'POST' });
}

export function exportPath(id: string | null, format: 'markdown' | 'json'): string {
  return id ? `${BASE}/conversations/${encodeURIComponent(id)}/export?format=${format}` : `${BASE}/export?format=${format}`;
}

/** The list with `conversation` first (it was just used), replacing its older copy. */
export function upsertConversation(list: Conversation[], conversation: Conversation): Conversation[] {
  return [conversation, ...list.filter((item) => item.id !== conversation.id)];
}

export function patchConversation(list: Conversation[], id: string, change: Partial<Conversation>): Conversation[] {
  return list.map((item) => (item.id === id ? { ...item, ...change } : item));
}

export function removeConversation(list: Conversation[], id: string): Conversation[] {
  return list.filter((item) => item.id !== id);
}

/** The stored messages as thread items (system and tool messages are not shown). */
export function threadFromConversation(detail: ConversationDetail): ThreadItem[] {
  const items: ThreadItem[] = [];
  for (const message of detail.messages) {
    if (message.role === 'user') {
      items.push({ kind: 'user', key: message.id, content: message.content, attachments: message.attachments ?? [], createdAt: message.created_at });
    } else if (message.role === 'assistant') {
      const research = message.meta?.mode === 'research';
      items.push({ kind: 'assistant', key: message.id, answer: answerFromMessage(message), createdAt: message.created_at, research });
    }
  }
  return items;
}

/** Replace the answer of one thread item (by key). */
export function updateAnswerItem(items: ThreadItem[], key: string, change: (answer: Answer) => Answer): ThreadItem[] {
  return items.map((item) => (item.kind === 'assistant' && item.key === key ? { ...item, answer: change(item.answer) } : item));
}

/** A title for a new conversation's first message, as the list shows it until the server's arrives. */
export function provisionalTitle(content: string): string {
  const line = (content.trim().split('\n')[0] ?? '').replace(/[#*_`>]/g, '').trim();
  if (!line) return 'New conversation';
  return line.length > 60 ? `${line.slice(0, 57)}…` : line;
}
