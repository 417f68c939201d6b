/** The chat stream's events (src/fimum_ai/chat/events.py), as the browser receives them. */
import type { SseFrame } from './sse';

interface Base {
  /** Which parallel stream the event belongs to (a research model id, "synthesis"); absent for one answer. */
  source?: string;
}

export type ChatEvent = Base &
  (
    | { type: 'started'; conversation_id: string; message_id: string; model: string }
    | { type: 'delta'; text: string }
    | { type: 'model_switch'; model: string; previous: string; reason: string }
    | { type: 'tool_call'; id: string; name: string; arguments: string }
    | { type: 'tool_result'; id: string; name: string; content: string; images: string[]; ok: boolean }
    | { type: 'progress'; stage: string; detail: string }
    | { type: 'sources'; items: Source[] }
    | { type: 'usage'; prompt_tokens: number; completion_tokens: number; total_tokens: number }
    | { type: 'done'; model: string; finish_reason: string }
    | { type: 'error'; code: string; message: string }
  );

export interface Source {
  url: string;
  title: string;
  snippet?: string;
  cited_by?: string[];
  [key: string]: unknown;
}

const TYPES = new Set(['started', 'delta', 'model_switch', 'tool_call', 'tool_result', 'progress', 'sources', 'usage', 'done', 'error']);

/** The event in a frame, or null for frames this client does not know (newer servers may add some). */
export function eventFromFrame(frame: SseFrame): ChatEvent | null {
  let data: unknown;
  try {
    data = JSON.parse(frame.data);
  } catch {
    return null;
  }
  if (typeof data !== 'object' || data === null) return null;
  const record = data as Record<string, unknown>;
  const type = typeof record.type === 'string' ? record.type : frame.event;
  if (!TYPES.has(type)) return null;
  return { ...record, type } as ChatEvent;
}
