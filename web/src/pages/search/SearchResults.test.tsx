import { act, fireEvent, render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { CredibilityBadge } from './CredibilityBadge';
import { breakdownRows, credibilityLevel, displayScore, signalLabel } from './credibility';
import { Snippet } from './Snippet';

describe('Snippet', () => {
  it('renders highlights as <mark> and everything else as inert text', () => {
    const { container } = render(
      <Snippet text={'<img src=x onerror="alert(1)"> the <b>solar</b> &amp; <b>wind</b> <script>bad()</script>'} />,
    );
    const marks = [...container.querySelectorAll('mark')].map((mark) => mark.textContent);
    expect(marks).toEqual(['solar', 'wind']);
    // No element was created from the page's text: only the paragraph, its spans and the marks.
    expect(container.querySelectorAll('img, script')).toHaveLength(0);
    expect(container.textContent).toBe('<img src=x onerror="alert(1)"> the solar & wind <script>bad()</script>');
  });
});

describe('credibility', () => {
  it('names known signals and humanises the rest', () => {
    expect(signalLabel('pagerank')).toBe('Link authority (PageRank)');
    expect(signalLabel('domain_reputation')).toBe('Domain reputation');
    expect(signalLabel('someNewSignal')).toBe('Some new signal');
  });

  it('reads numbers and objects with a value and weight, skipping what it cannot read', () => {
    expect(
      breakdownRows({
        score: 80,
        breakdown: { https: 10, pagerank: { points: 22.456, weight: 0.3 }, author: true, junk: [1, 2] },
      }),
    ).toEqual([
      { key: 'https', label: 'HTTPS', value: '10' },
      { key: 'pagerank', label: 'Link authority (PageRank)', value: '22.46 (weight 0.3)' },
      { key: 'author', label: 'Named author', value: 'yes' },
    ]);
  });

  it('bands and clamps the score', () => {
    expect(credibilityLevel(70)).toBe('high');
    expect(credibilityLevel(69)).toBe('medium');
    expect(credibilityLevel(39)).toBe('low');
    expect(displayScore({ score: 104.2, breakdown: {} })).toBe(100);
    expect(displayScore({ score: Number.NaN, breakdown: {} })).toBeNull();
    expect(displayScore(null)).toBeNull();
  });
});

describe('CredibilityBadge', () => {
  const credibility = { score: 82, breakdown: { https: 10, freshness: 14 } };

  it('describes the badge with its breakdown for screen readers', () => {
    render(<CredibilityBadge credibility={credibility} />);
    const badge = screen.getByRole('button', { name: /^Credibility 82\s*·\s*high$/ });
    expect(badge).toHaveAccessibleDescription(/HTTPS\s*10\s*Freshness\s*14/);
  });

  it('shows the breakdown on focus and on hover, and Escape hides it', () => {
    render(<CredibilityBadge credibility={credibility} />);
    const badge = screen.getByRole('button', { name: /Credibility 82/ });
    const tooltip = screen.getByRole('tooltip', { hidden: true });
    expect(tooltip).not.toHaveClass('cred-tooltip-open');

    act(() => badge.focus());
    expect(tooltip).toHaveClass('cred-tooltip-open');
    fireEvent.keyDown(document, { key: 'Escape' });
    expect(tooltip).not.toHaveClass('cred-tooltip-open');
    act(() => badge.blur());

    fireEvent.mouseEnter(badge.parentElement as HTMLElement);
    expect(tooltip).toHaveClass('cred-tooltip-open');
    fireEvent.mouseLeave(badge.parentElement as HTMLElement);
    expect(tooltip).not.toHaveClass('cred-tooltip-open');
  });

  it('toggles on tap for touch screens', () => {
    render(<CredibilityBadge credibility={credibility} />);
    const badge = screen.getByRole('button', { name: /Credibility 82/ });
    const tooltip = screen.getByRole('tooltip', { hidden: true });
    fireEvent.click(badge);
    expect(tooltip).toHaveClass('cred-tooltip-open');
    fireEvent.click(badge);
    expect(tooltip).not.toHaveClass('cred-tooltip-open');
  });

  it('says so when a result is not rated', () => {
    render(<CredibilityBadge credibility={null} />);
    expect(screen.getByText('Credibility not rated')).toBeInTheDocument();
  });
});
