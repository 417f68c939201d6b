import { describe, expect, it } from 'vitest';
import { answerFromMessage, applyEvent, emptyAnswer, endAnswer, type Answer } from './answer';
import { eventFromFrame, type ChatEvent } from './events';

function run(events: ChatEvent[], start: Answer = emptyAnswer()): Answer {
  return events.reduce(applyEvent, start);
}

describe('applyEvent', () => {
  it('builds a streamed answer with the model that actually replied', () => {
    const answer = run([
      { type: 'started', conversation_id: 'c1', message_id: 'm1', model: 'a/one' },
      { type: 'model_switch', model: 'b/two', previous: 'a/one', reason: 'rate_limited' },
      { type: 'delta', text: 'Hello ' },
      { type: 'delta', text: 'world' },
      { type: 'usage', prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
      { type: 'done', model: 'b/two', finish_reason: 'stop' },
    ]);
    expect(answer).toMatchObject({
      status: 'done',
      text: 'Hello world',
      model: 'b/two',
      conversationId: 'c1',
      messageId: 'm1',
      usage: { prompt: 5, completion: 2 },
      switches: [{ model: 'b/two', previous: 'a/one', reason: 'rate_limited' }],
    });
  });

  it('does not mutate the previous answer', () => {
    const before = emptyAnswer();
    const after = applyEvent(before, { type: 'delta', text: 'x' });
    expect(before.text).toBe('');
    expect(after.text).toBe('x');
  });

  it('pairs tool calls with their results and collects generated images', () => {
    const answer = run([
      { type: 'tool_call', id: 't1', name: 'generate_image', arguments: '{"prompt":"a logo"}' },
      { type: 'tool_result', id: 't1', name: 'generate_image', content: 'ok', images: ['img-1'], ok: true },
      { type: 'tool_result', id: 'fimum_auto_image', name: 'generate_image', content: 'ok', images: ['img-2'], ok: true },
      { type: 'done', model: 'm', finish_reason: 'stop' },
    ]);
    expect(answer.tools.map((t) => [t.id, t.result?.images])).toEqual([
      ['t1', ['img-1']],
      ['fimum_auto_image', ['img-2']],
    ]);
    expect(answer.images).toEqual(['img-1', 'img-2']);
  });

  it('keeps each research model apart and the synthesis as the answer text', () => {
    const answer = run([
      { type: 'progress', stage: 'no_live_sources', detail: 'Research ran without live sources.' },
      { type: 'progress', stage: 'model_started', detail: '', source: 'r/a' },
      { type: 'progress', stage: 'model_started', detail: '', source: 'r/b' },
      { type: 'delta', text: 'A says', source: 'r/a' },
      { type: 'error', code: 'upstream_failed', message: 'HTTP 500', source: 'r/b' },
      { type: 'sources', items: [{ url: 'https://a.example', title: 'A' }], source: 'r/a' },
      { type: 'done', model: 'r/a', finish_reason: 'stop', source: 'r/a' },
      { type: 'progress', stage: 'synthesis_started', detail: '', source: 'synthesis' },
      { type: 'delta', text: 'Merged.' },
      { type: 'done', model: 'r/a', finish_reason: 'stop' },
    ]);
    expect(answer.research).toEqual([
      { model: 'r/a', text: 'A says', status: 'done', error: null, sources: [{ url: 'https://a.example', title: 'A' }] },
      { model: 'r/b', text: '', status: 'error', error: 'HTTP 500', sources: [] },
    ]);
    expect(answer.text).toBe('Merged.');
    expect(answer.status).toBe('done');
    expect(answer.notes).toEqual(['Research ran without live sources.']);
  });

  it('marks a stopped answer cancelled and an error as failed', () => {
    expect(run([{ type: 'delta', text: 'par' }, { type: 'done', model: 'm', finish_reason: 'cancelled' }]).status).toBe('cancelled');
    const failed = run([{ type: 'error', code: 'models_unavailable', message: 'No model could answer' }]);
    expect(failed.status).toBe('error');
    expect(failed.error).toEqual({ code: 'models_unavailable', message: 'No model could answer' });
  });

  it('ends a stream that closed without done', () => {
    expect(endAnswer(emptyAnswer(), 'cancelled').status).toBe('cancelled');
    expect(endAnswer(emptyAnswer(), 'error').error?.code).toBe('stream_interrupted');
    const done = run([{ type: 'done', model: 'm', finish_reason: 'stop' }]);
    expect(endAnswer(done, 'error')).toBe(done);
  });
});

describe('answerFromMessage', () => {
  it('shows a stored agent answer like the streamed one', () => {
    const answer = answerFromMessage({
      id: 'm1',
      role: 'assistant',
      content: '```html\n<h1>Hi</h1>\n```',
      model: 'q/coder',
      finish_reason: 'stop',
      usage: { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 },
      attachments: [],
      meta: {
        tool_calls: [{ type: 'tool_call', id: 't1', name: 'generate_image', arguments: '{}' }],
        tool_results: [{ type: 'tool_result', id: 't1', name: 'generate_image', content: 'done', images: ['i1'], ok: true }],
        images: ['i1'],
        model_switches: [{ model: 'q/coder', previous: 'x', reason: 'timeout' }],
      },
      created_at: '2026-01-01T00:00:00Z',
    });
    expect(answer).toMatchObject({ status: 'done', model: 'q/coder', images: ['i1'], usage: { prompt: 10, completion: 20 } });
    expect(answer.tools[0]?.result?.content).toBe('done');
    expect(answer.switches).toHaveLength(1);
  });

  it('shows a stored research answer like the streamed one: each model, the synthesis, its sources', () => {
    const events: ChatEvent[] = [
      { type: 'delta', text: 'Alpha says A [1].', source: 'r/alpha' },
      { type: 'sources', items: [{ n: 1, url: 'https://a.example/', title: 'A' }], source: 'r/alpha' },
      { type: 'done', model: 'r/alpha', finish_reason: 'stop', source: 'r/alpha' },
      { type: 'error', code: 'upstream_error', message: 'r/beta failed', source: 'r/beta' },
      { type: 'delta', text: 'Choose A [1].' },
      { type: 'sources', items: [{ n: 1, url: 'https://a.example/', title: 'A' }] },
      { type: 'done', model: 's/synth', finish_reason: 'stop' },
    ];
    const streamed = events.reduce(applyEvent, emptyAnswer());
    const stored = answerFromMessage({
      id: 'm2',
      role: 'assistant',
      content: 'Choose A [1].',
      model: 's/synth',
      finish_reason: 'stop',
      usage: null,
      attachments: [],
      // What the server stores (chat/research_transcript.py).
      meta: {
        mode: 'research',
        research: [
          { model: 'r/alpha', text: 'Alpha says A [1].', status: 'done', error: null, sources: [{ n: 1, url: 'https://a.example/', title: 'A' }] },
          { model: 'r/beta', text: '', status: 'error', error: 'r/beta failed', sources: [] },
        ],
        sources: [{ n: 1, url: 'https://a.example/', title: 'A' }],
        notes: [],
      },
      created_at: '2026-01-01T00:00:00Z',
    });
    expect(stored.research).toEqual(streamed.research);
    expect(stored.sources).toEqual(streamed.sources);
    expect(stored).toMatchObject({ status: 'done', text: streamed.text, model: streamed.model });
  });
});

describe('eventFromFrame', () => {
  it('reads known events and skips unknown or broken ones', () => {
    expect(eventFromFrame({ event: 'delta', data: '{"type":"delta","text":"x"}', id: null })).toEqual({ type: 'delta', text: 'x' });
    expect(eventFromFrame({ event: 'future', data: '{"type":"future"}', id: null })).toBeNull();
    expect(eventFromFrame({ event: 'delta', data: 'not json', id: null })).toBeNull();
  });
});
