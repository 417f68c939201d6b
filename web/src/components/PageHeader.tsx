import { useEffect, type ReactNode } from 'react';

/** The page's <h1>; also sets the document title so screen readers announce route changes. */
export function PageHeader({ title, children }: { title: string; children?: ReactNode }) {
  useEffect(() => {
    document.title = `${title} · Fimum AI`;
  }, [title]);
  return (
    <header className="page-header">
      <h1>{title}</h1>
      {children}
    </header>
  );
}
