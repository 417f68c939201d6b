/**
 * Props for a region that scrolls (code, tool output, the message log): keyboard users must be able
 * to focus it to scroll it (WCAG 2.1.1; axe's scrollable-region-focusable). jsx-a11y's
 * no-noninteractive-tabindex does not know about scroll containers, hence one named exception.
 */
export const keyboardScrollable = { tabIndex: 0 } as const;
