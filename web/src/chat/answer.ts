/**
 * One assistant answer as the UI shows it, built from stream events (`applyEvent`) while it streams
 * and from the stored message (`answerFromMessage`) afterwards, so both look the same.
 */
import type { ChatEvent, Source } from './events';

export type AnswerStatus = 'streaming' | 'done' | 'error' | 'cancelled';

export interface ToolStep {
  id: string;
  name: string;
  arguments: string;
  result: { content: string; images: string[]; ok: boolean } | null;
}

export interface ModelSwitchNote {
  model: string;
  previous: string;
  reason: string;
}

/** One research model's part (research mode), or the synthesis. */
export interface ResearchTrack {
  model: string;
  text: string;
  status: 'running' | 'done' | 'error';
  error: string | null;
  sources: Source[];
}

export interface Answer {
  status: AnswerStatus;
  text: string;
  /** The model answering now, and at the end the one that actually replied. */
  model: string | null;
  messageId: string | null;
  conversationId: string | null;
  finishReason: string | null;
  switches: ModelSwitchNote[];
  tools: ToolStep[];
  images: string[];
  /** Notes to show with the answer (a truncated document, research without live sources...). */
  notes: string[];
  /** What is happening now when it is not text (searching, running a tool, synthesising). */
  stage: string | null;
  sources: Source[];
  research: ResearchTrack[];
  usage: { prompt: number; completion: number } | null;
  error: { code: string; message: string } | null;
}

export function emptyAnswer(model: string | null = null): Answer {
  return {
    status: 'streaming',
    text: '',
    model,
    messageId: null,
    conversationId: null,
    finishReason: null,
    switches: [],
    tools: [],
    images: [],
    notes: [],
    stage: null,
    sources: [],
    research: [],
    usage: null,
    error: null,
  };
}

const STAGE_TEXT: Record<string, string> = {
  searching: 'Searching the web…',
  synthesis_started: 'Merging the answers…',
  model_started: 'Researching…',
};

/** Progress stages whose detail belongs with the answer for good, not only while it streams. */
const NOTE_STAGES = new Set(['document_truncated', 'no_live_sources', 'search_failed']);

function updateTrack(answer: Answer, model: string, change: (track: ResearchTrack) => ResearchTrack): Answer {
  const index = answer.research.findIndex((track) => track.model === model);
  const track: ResearchTrack = answer.research[index] ?? { model, text: '', status: 'running', error: null, sources: [] };
  const research = [...answer.research];
  if (index === -1) research.push(change(track));
  else research[index] = change(track);
  return { ...answer, research };
}

/** The answer after one more event (never mutates). */
export function applyEvent(answer: Answer, event: ChatEvent): Answer {
  // Research: each model's events carry its id as `source` (the synthesis is "synthesis").
  if (event.source && event.source !== 'synthesis') {
    const model = event.source;
    switch (event.type) {
      case 'progress':
        return updateTrack(answer, model, (track) => track);
      case 'delta':
        return updateTrack(answer, model, (track) => ({ ...track, text: track.text + event.text }));
      case 'sources':
        return updateTrack(answer, model, (track) => ({ ...track, sources: event.items }));
      case 'done':
        return updateTrack(answer, model, (track) => ({ ...track, status: 'done' }));
      case 'error':
        return updateTrack(answer, model, (track) => ({ ...track, status: 'error', error: event.message }));
      case 'tool_call':
      case 'tool_result':
        break; // agent events from a nested research run: shown like the answer's own
      default:
        return answer;
    }
  }
  switch (event.type) {
    case 'started':
      return {
        ...answer,
        messageId: event.message_id || null,
        conversationId: event.conversation_id || null,
        model: event.model || answer.model,
      };
    case 'delta':
      return { ...answer, text: answer.text + event.text, stage: null };
    case 'model_switch':
      return {
        ...answer,
        model: event.model,
        switches: [...answer.switches, { model: event.model, previous: event.previous, reason: event.reason }],
      };
    case 'tool_call':
      return {
        ...answer,
        stage: `Running ${event.name}…`,
        tools: [...answer.tools, { id: event.id, name: event.name, arguments: event.arguments, result: null }],
      };
    case 'tool_result': {
      const result = { content: event.content, images: event.images ?? [], ok: event.ok };
      const known = answer.tools.some((tool) => tool.id === event.id);
      const tools = known
        ? answer.tools.map((tool) => (tool.id === event.id ? { ...tool, result } : tool))
        : [...answer.tools, { id: event.id, name: event.name, arguments: '', result }];
      return { ...answer, tools, images: [...answer.images, ...result.images], stage: null };
    }
    case 'progress':
      if (NOTE_STAGES.has(event.stage) && event.detail) return { ...answer, notes: [...answer.notes, event.detail] };
      return { ...answer, stage: STAGE_TEXT[event.stage] ?? (event.detail || answer.stage) };
    case 'sources':
      return { ...answer, sources: event.items };
    case 'usage':
      return { ...answer, usage: { prompt: event.prompt_tokens, completion: event.completion_tokens } };
    case 'done':
      return {
        ...answer,
        status: event.finish_reason === 'cancelled' ? 'cancelled' : 'done',
        model: event.model || answer.model,
        finishReason: event.finish_reason,
        stage: null,
      };
    case 'error':
      return { ...answer, status: 'error', error: { code: event.code, message: event.message }, stage: null };
  }
}

/** The stream ended without `done` or `error` (the user stopped it, or the connection broke). */
export function endAnswer(answer: Answer, how: 'cancelled' | 'error', message = ''): Answer {
  if (answer.status !== 'streaming') return answer;
  if (how === 'cancelled') return { ...answer, status: 'cancelled', finishReason: 'cancelled', stage: null };
  return { ...answer, status: 'error', stage: null, error: { code: 'stream_interrupted', message: message || 'The answer was interrupted.' } };
}

/** A stored assistant message (GET /chat/conversations/{id}), in the same shape as a streamed one. */
export interface StoredMessage {
  id: string;
  role: string;
  content: string;
  model: string | null;
  finish_reason: string | null;
  usage: Record<string, number> | null;
  attachments: StoredAttachment[];
  meta: Record<string, unknown>;
  created_at: string;
}

export interface StoredAttachment {
  id: string;
  kind?: 'image' | 'document';
  filename?: string;
  media_type?: string;
  size_bytes?: number;
}

function list<T>(value: unknown): T[] {
  return Array.isArray(value) ? (value as T[]) : [];
}

export function answerFromMessage(message: StoredMessage): Answer {
  const meta = message.meta ?? {};
  const calls = list<{ id: string; name: string; arguments: string }>(meta.tool_calls);
  const results = list<{ id: string; name: string; content: string; images?: string[]; ok?: boolean }>(meta.tool_results);
  const tools: ToolStep[] = calls.map((call) => ({ id: call.id, name: call.name, arguments: call.arguments, result: null }));
  for (const result of results) {
    const value = { content: result.content, images: result.images ?? [], ok: result.ok ?? true };
    const tool = tools.find((step) => step.id === result.id);
    if (tool) tool.result = value;
    else tools.push({ id: result.id, name: result.name, arguments: '', result: value });
  }
  const error = meta.error as { code: string; message: string } | undefined;
  const finish = message.finish_reason;
  return {
    ...emptyAnswer(message.model),
    status: finish === 'cancelled' ? 'cancelled' : finish === 'error' ? 'error' : 'done',
    text: message.content,
    messageId: message.id,
    finishReason: finish,
    switches: list<ModelSwitchNote>(meta.model_switches),
    tools,
    images: list<string>(meta.images),
    notes: list<string>(meta.notes),
    sources: list<Source>(meta.sources),
    research: list<ResearchTrack>(meta.research),
    usage: message.usage ? { prompt: message.usage.prompt_tokens ?? 0, completion: message.usage.completion_tokens ?? 0 } : null,
    error: error ?? null,
  };
}
