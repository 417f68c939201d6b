import { memo } from 'react';
import ReactMarkdown, { type Components } from 'react-markdown';
import remarkGfm from 'remark-gfm';
import type { Element, ElementContent } from 'hast';
import { CodeBlock } from './CodeBlock';

function textOf(node: ElementContent | Element): string {
  if (node.type === 'text') return node.value;
  if (node.type === 'element') return node.children.map(textOf).join('');
  return '';
}

function languageOf(code: Element): string {
  const classes = code.properties?.className;
  const list: string[] = Array.isArray(classes) ? classes.map(String) : typeof classes === 'string' ? (classes as string).split(' ') : [];
  const found = list.find((name) => name.startsWith('language-'));
  return found ? found.slice('language-'.length) : '';
}

const components: Components = {
  // Fenced code: our block with highlighting, copy and Run.
  pre({ node }) {
    const code = node?.children.find((child): child is Element => child.type === 'element' && child.tagName === 'code');
    if (!code) return <pre>{node ? textOf(node) : null}</pre>;
    return <CodeBlock language={languageOf(code)} code={textOf(code).replace(/\n$/, '')} />;
  },
  a({ href, children }) {
    return (
      <a href={href} target="_blank" rel="noopener noreferrer nofollow">
        {children}
      </a>
    );
  },
  // Remote images in model output would leak the reader's address to any host (and the CSP blocks
  // them): show them as links instead.
  img({ src, alt }) {
    return typeof src === 'string' && src ? (
      <a href={src} target="_blank" rel="noopener noreferrer nofollow">
        {alt ? `Image: ${alt}` : 'Image link'}
      </a>
    ) : null;
  },
  table({ children }) {
    return (
      <div className="table-wrap">
        <table>{children}</table>
      </div>
    );
  },
};

/**
 * Model and user Markdown rendered as React elements (react-markdown builds elements; raw HTML in
 * the text stays text, and unsafe link protocols are dropped by its URL filter).
 */
export const Markdown = memo(function Markdown({ text }: { text: string }) {
  return (
    <div className="markdown">
      <ReactMarkdown remarkPlugins={[remarkGfm]} components={components}>
        {text}
      </ReactMarkdown>
    </div>
  );
});
