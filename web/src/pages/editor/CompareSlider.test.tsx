import { fireEvent, render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { CompareSlider } from './CompareSlider';

function setup(beforeBox?: { left: number; top: number; width: number; height: number }) {
  render(<CompareSlider beforeSrc="blob:before" afterSrc="blob:after" width={400} height={300} beforeBox={beforeBox} />);
  return screen.getByRole('slider', { name: 'Before and after divider' });
}

// The first test pays for jsdom and React's first render: seconds on a loaded 2-core machine.
describe('CompareSlider', { timeout: 30_000 }, () => {
  it('is a keyboard-operable slider with its values announced', () => {
    const slider = setup();
    expect(slider).toHaveAttribute('aria-valuemin', '0');
    expect(slider).toHaveAttribute('aria-valuemax', '100');
    expect(slider).toHaveAttribute('aria-valuenow', '50');
    expect(slider).toHaveAttribute('tabindex', '0');
    const press = (key: string, shiftKey = false) => fireEvent.keyDown(slider, { key, shiftKey });
    press('ArrowRight');
    press('ArrowRight');
    expect(slider).toHaveAttribute('aria-valuenow', '52');
    press('ArrowLeft', true);
    expect(slider).toHaveAttribute('aria-valuenow', '42');
    press('PageUp');
    expect(slider).toHaveAttribute('aria-valuenow', '52');
    press('End');
    press('ArrowRight');
    expect(slider).toHaveAttribute('aria-valuenow', '100');
    press('Home');
    press('ArrowDown');
    expect(slider).toHaveAttribute('aria-valuenow', '0');
    expect(slider).toHaveAttribute('aria-valuetext', '0% original, 100% result');
  });

  it('clips the original at the divider', () => {
    const slider = setup();
    fireEvent.keyDown(slider, { key: 'PageDown' });
    fireEvent.keyDown(slider, { key: 'PageDown' });
    const original = screen.getByAltText('Original');
    expect(original.parentElement?.style.clipPath).toBe('inset(0 70% 0 0)');
    expect(screen.getByAltText('Result')).toBeInTheDocument();
  });

  it('follows a pointer press and drag across the frame', () => {
    const slider = setup();
    const frame = screen.getByTestId('compare-frame');
    frame.getBoundingClientRect = () => ({ left: 100, top: 0, width: 400, height: 300, right: 500, bottom: 300, x: 100, y: 0, toJSON: () => ({}) });
    frame.setPointerCapture = () => {};
    fireEvent.pointerDown(frame, { button: 0, clientX: 200, pointerId: 1 });
    expect(slider).toHaveAttribute('aria-valuenow', '25');
    fireEvent.pointerMove(frame, { clientX: 450, pointerId: 1 });
    expect(slider).toHaveAttribute('aria-valuenow', '88');
    fireEvent.pointerUp(frame, { pointerId: 1 });
    fireEvent.pointerMove(frame, { clientX: 150, pointerId: 1 });
    expect(slider).toHaveAttribute('aria-valuenow', '88'); // released: no longer following
  });

  it('places the original inside a larger result (outpainting)', () => {
    setup({ left: 0.25, top: 0, width: 0.5, height: 1 });
    expect(screen.getByAltText('Original')).toHaveStyle({ left: '25%', top: '0%', width: '50%', height: '100%' });
  });
});
