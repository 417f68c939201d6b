import { describe, expect, it } from 'vitest';
import { attachmentProblem, MAX_ATTACHMENT_BYTES } from './attachments';
import {
  patchConversation,
  provisionalTitle,
  removeConversation,
  threadFromConversation,
  updateAnswerItem,
  upsertConversation,
  type Conversation,
} from './conversations';

const conv = (id: string, title = id): Conversation => ({ id, title, model: 'fimum/auto', created_at: '', updated_at: '' });

describe('conversation list', () => {
  it('puts a used conversation first without duplicating it', () => {
    const list = [conv('a'), conv('b'), conv('c')];
    expect(upsertConversation(list, conv('c', 'C2')).map((c) => c.title)).toEqual(['C2', 'a', 'b']);
    expect(upsertConversation(list, conv('d')).map((c) => c.id)).toEqual(['d', 'a', 'b', 'c']);
  });

  it('renames and removes by id', () => {
    const list = [conv('a'), conv('b')];
    expect(patchConversation(list, 'b', { title: 'New' })[1]?.title).toBe('New');
    expect(removeConversation(list, 'a').map((c) => c.id)).toEqual(['b']);
  });

  it('titles a new conversation from the first line of its message', () => {
    expect(provisionalTitle('# Build a *landing* page\nwith a logo')).toBe('Build a landing page');
    expect(provisionalTitle('   ')).toBe('New conversation');
    expect(provisionalTitle('x'.repeat(100))).toHaveLength(58);
  });
});

describe('thread', () => {
  const detail = {
    ...conv('a'),
    messages: [
      { id: 's', role: 'system', content: 'sys', model: null, finish_reason: null, usage: null, attachments: [], meta: {}, created_at: '1' },
      { id: 'u', role: 'user', content: 'hi', model: null, finish_reason: null, usage: null, attachments: [{ id: 'f', kind: 'image' as const, filename: 'a.png' }], meta: {}, created_at: '2' },
      { id: 'm', role: 'assistant', content: 'hello', model: 'x/y', finish_reason: 'cancelled', usage: null, attachments: [], meta: {}, created_at: '3' },
    ],
  };

  it('shows user and assistant messages only, in order', () => {
    const items = threadFromConversation(detail);
    expect(items.map((item) => item.kind)).toEqual(['user', 'assistant']);
    expect(items[1]?.kind === 'assistant' && items[1].answer.status).toBe('cancelled');
  });

  it('updates one answer by key', () => {
    const items = updateAnswerItem(threadFromConversation(detail), 'm', (answer) => ({ ...answer, text: 'changed' }));
    expect(items[1]?.kind === 'assistant' && items[1].answer.text).toBe('changed');
    expect(items[0]).toEqual(threadFromConversation(detail)[0]);
  });
});

describe('attachmentProblem', () => {
  it('accepts images and documents up to 10 MB and says why others are refused', () => {
    expect(attachmentProblem({ name: 'a.png', size: 10, type: 'image/png' })).toBeNull();
    expect(attachmentProblem({ name: 'notes.md', size: 10, type: '' })).toBeNull();
    expect(attachmentProblem({ name: 'big.pdf', size: MAX_ATTACHMENT_BYTES + 1, type: 'application/pdf' })).toMatch(/limit is 10 MB/);
    expect(attachmentProblem({ name: 'run.exe', size: 10, type: 'application/x-msdownload' })).toMatch(/not a supported file/);
    expect(attachmentProblem({ name: 'empty.txt', size: 0, type: 'text/plain' })).toMatch(/empty/);
  });
});
