import { act, fireEvent, render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { CredibilityBadge } from './CredibilityBadge';
import { breakdownRows, credibilityLevel, displayScore, signalLabel } from './credibility';
import { Snippet } from './Snippet';

describe('Snippet', () => {
  it('renders highlights as <mark> and everything else as inert text', () => {
    const { container } = render(
      <Snippet text={'<img src=x onerror="alert(1)"> the <mark>solar</mark> &amp; <mark>wind</mark> <script>bad()</script>'} />,
    );
    const marks = [...container.querySelectorAll('mark')].map((mark) => mark.textContent);
    expect(marks).toEqual(['solar', 'wind']);
    // No element was created from the page's text: only the paragraph, its spans and the marks.
    expect(container.querySelectorAll('img, script')).toHaveLength(0);
    expect(container.textContent).toBe('<img src=x onerror="alert(1)"> the solar & wind <script>bad()</script>');
  });
});

// The API's shape: docs/search.md, src/fimum_ai/search/credibility.py.
const breakdown = {
  authority: { value: 0.93, weight: 30.0, points: 27.9 },
  reputation: { value: 0.5, weight: 20.0, points: 10.0 },
  agreement: { value: 0.0, weight: 15.0, points: 0.0 },
  freshness: { value: 0.6, weight: 15.0, points: 9.0 },
  metadata: { value: 0.3, weight: 10.0, points: 3.0 },
  https: { value: 1.0, weight: 10.0, points: 10.0 },
};

describe('credibility', () => {
  it("names the API's six signals and humanises a new one", () => {
    expect(signalLabel('authority')).toBe('Link authority (PageRank)');
    expect(signalLabel('reputation')).toBe('Domain reputation');
    expect(signalLabel('someNewSignal')).toBe('Some new signal');
  });

  it('shows each signal as points of its weight, in the order the server sent', () => {
    expect(breakdownRows({ score: 59.9, breakdown })).toEqual([
      { key: 'authority', label: 'Link authority (PageRank)', value: '27.9 of 30' },
      { key: 'reputation', label: 'Domain reputation', value: '10 of 20' },
      { key: 'agreement', label: 'Agreement with other sites', value: '0 of 15' },
      { key: 'freshness', label: 'Freshness', value: '9 of 15' },
      { key: 'metadata', label: 'Author, publisher and date given', value: '3 of 10' },
      { key: 'https', label: 'Served over HTTPS', value: '10 of 10' },
    ]);
  });

  it('leaves out entries without points and weight', () => {
    const odd = { https: 10, junk: { value: 1 }, authority: breakdown.authority } as unknown as typeof breakdown;
    expect(breakdownRows({ score: 40, breakdown: odd }).map((row) => row.key)).toEqual(['authority']);
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
  const credibility = { score: 82.4, breakdown: { https: breakdown.https, freshness: breakdown.freshness } };

  it('describes the badge with its breakdown for screen readers', () => {
    render(<CredibilityBadge credibility={credibility} />);
    const badge = screen.getByRole('button', { name: /^Credibility 82\s*·\s*high$/ });
    expect(badge).toHaveAccessibleDescription(/Served over HTTPS\s*10 of 10\s*Freshness\s*9 of 15/);
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
