import { useEffect, useId, useState } from 'react';
import { breakdownRows, credibilityLevel, displayScore } from './credibility';
import type { Credibility } from './types';

/**
 * The score as a badge; its breakdown appears on hover and on keyboard focus (and on tap, for touch
 * screens), stays while the pointer moves onto it, and Escape dismisses it (WCAG 1.4.13). The
 * breakdown is also the button's description, so screen readers hear it without opening anything.
 */
export function CredibilityBadge({ credibility }: { credibility: Credibility | null | undefined }) {
  const tooltipId = useId();
  const [hovered, setHovered] = useState(false);
  const [focused, setFocused] = useState(false);
  const [pinned, setPinned] = useState(false);
  const [dismissed, setDismissed] = useState(false);
  const score = displayScore(credibility);
  const open = (hovered || focused || pinned) && !dismissed;

  useEffect(() => {
    if (!open) return;
    const onKey = (event: KeyboardEvent) => {
      if (event.key === 'Escape') {
        setDismissed(true);
        setPinned(false);
      }
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [open]);

  if (score === null || !credibility) {
    return <span className="cred-badge cred-unknown">Credibility not rated</span>;
  }
  const level = credibilityLevel(score);
  const rows = breakdownRows(credibility);

  return (
    <span
      className="cred"
      onMouseEnter={() => {
        setHovered(true);
        setDismissed(false);
      }}
      onMouseLeave={() => setHovered(false)}
    >
      <button
        type="button"
        className={`cred-badge cred-${level}`}
        aria-describedby={tooltipId}
        onFocus={() => {
          setFocused(true);
          setDismissed(false);
        }}
        onBlur={() => {
          setFocused(false);
          setPinned(false);
        }}
        onClick={() => {
          setPinned((value) => !value);
          setDismissed(false);
        }}
      >
        Credibility {score}
        <span className="cred-level"> · {level}</span>
      </button>
      <span id={tooltipId} role="tooltip" className={open ? 'cred-tooltip cred-tooltip-open' : 'cred-tooltip'}>
        <span className="cred-tooltip-title">Credibility {score} of 100: points per signal</span>
        {rows.length ? (
          <span className="cred-rows">
            {rows.map((row) => (
              <span key={row.key} className="cred-row">
                <span>{row.label}</span>
                <span className="cred-row-value">{row.value}</span>
              </span>
            ))}
          </span>
        ) : (
          <span>No breakdown given.</span>
        )}
      </span>
    </span>
  );
}
