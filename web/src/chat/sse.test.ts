import { describe, expect, it } from 'vitest';
import { readSse, SseParser } from './sse';

describe('SseParser', () => {
  it('parses frames split anywhere, across chunks', () => {
    const text = 'event: delta\ndata: {"type":"delta","text":"Hel"}\n\nevent: delta\ndata: {"type":"delta","text":"lo"}\n\n';
    for (let cut = 1; cut < text.length; cut += 1) {
      const parser = new SseParser();
      const frames = [...parser.push(text.slice(0, cut)), ...parser.push(text.slice(cut))];
      expect(frames.map((f) => JSON.parse(f.data).text)).toEqual(['Hel', 'lo']);
      expect(frames.every((f) => f.event === 'delta')).toBe(true);
    }
  });

  it('handles CRLF and CR line ends, comments, multi-line data and ids', () => {
    const parser = new SseParser();
    const frames = parser.push(': keep-alive\r\nid: 7\r\ndata: a\r\ndata: b\r\n\r\ndata:c\r\r\n');
    expect(frames).toEqual([
      { event: 'message', data: 'a\nb', id: '7' },
      { event: 'message', data: 'c', id: '7' },
    ]);
  });

  it('waits for the LF after a CR at the end of a chunk', () => {
    const parser = new SseParser();
    expect(parser.push('data: x\r')).toEqual([]);
    expect(parser.push('\n\r\n')).toEqual([{ event: 'message', data: 'x', id: null }]);
  });

  it('ignores frames without data and drops an unterminated last frame', () => {
    const parser = new SseParser();
    expect(parser.push('event: ping\n\n')).toEqual([]);
    expect(parser.push('data: half')).toEqual([]);
    expect(parser.end()).toEqual([]);
  });

  it('reads a byte stream with multi-byte characters split between chunks', async () => {
    const bytes = new TextEncoder().encode('event: delta\ndata: {"text":"héllo ✓"}\n\n');
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const byte of bytes) controller.enqueue(new Uint8Array([byte]));
        controller.close();
      },
    });
    const frames = [];
    for await (const frame of readSse(stream)) frames.push(frame);
    expect(frames).toHaveLength(1);
    expect(JSON.parse(frames[0]!.data).text).toBe('héllo ✓');
  });
});
