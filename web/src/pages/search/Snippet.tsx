import { parseSnippet } from './highlight';

/** A result's snippet: highlights become <mark> elements; every part is rendered as text, never as HTML. */
export function Snippet({ text }: { text: string }) {
  return (
    <p className="search-snippet">
      {parseSnippet(text).map((part, index) =>
        part.highlighted ? <mark key={index}>{part.text}</mark> : <span key={index}>{part.text}</span>,
      )}
    </p>
  );
}
