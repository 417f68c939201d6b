/**
 * The search API's snippets are HTML-escaped text in which the query words (and their inflected
 * forms, CJK/Thai substrings) are wrapped in `<mark>…</mark>` (src/fimum_ai/search/snippets.py).
 * We never hand that string to the DOM as HTML: it is split here into plain text parts, and the page
 * renders highlighted parts as <mark> elements. Any other tag stays literal text, so a page that
 * smuggles `<img onerror>` into its text shows those characters and nothing runs.
 */

export interface SnippetPart {
  text: string;
  highlighted: boolean;
}

const MARKER = /<(\/?)mark\s*>/gi;

const NAMED_ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: "\u00a0",
};

/** Decode the entities an HTML-escaping snippet generator produces (named basics and numeric). */
export function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, body: string) => {
    if (body[0] === '#') {
      const hex = body[1] === 'x' || body[1] === 'X';
      const code = Number.parseInt(body.slice(hex ? 2 : 1), hex ? 16 : 10);
      // Out-of-range and surrogate code points would throw or make broken strings: keep them as text.
      if (!Number.isFinite(code) || code <= 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
        return whole;
      }
      return String.fromCodePoint(code);
    }
    return NAMED_ENTITIES[body.toLowerCase()] ?? whole;
  });
}

/**
 * Split a marked-up snippet into text parts. Markers may nest or be unbalanced (a snippet cut in
 * the middle of a highlight): a part is highlighted while more markers are open than closed, and a
 * stray closing marker is ignored. Adjacent parts with the same state are merged; empty parts dropped.
 */
export function parseSnippet(snippet: string): SnippetPart[] {
  const parts: SnippetPart[] = [];
  let depth = 0;
  let last = 0;
  const push = (raw: string) => {
    if (!raw) return;
    const text = decodeEntities(raw);
    const highlighted = depth > 0;
    const previous = parts[parts.length - 1];
    if (previous && previous.highlighted === highlighted) previous.text += text;
    else parts.push({ text, highlighted });
  };
  for (const match of snippet.matchAll(MARKER)) {
    push(snippet.slice(last, match.index));
    depth = match[1] ? Math.max(0, depth - 1) : depth + 1;
    last = match.index + match[0].length;
  }
  push(snippet.slice(last));
  return parts;
}

/** The snippet as plain text (for titles and accessible names). */
export function snippetText(snippet: string): string {
  return parseSnippet(snippet)
    .map((part) => part.text)
    .join('');
}
