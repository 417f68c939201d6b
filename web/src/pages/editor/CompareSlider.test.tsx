import { fireEvent, render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { CompareSlider } from './CompareSlider';

function setup(beforeBox?: { left: number; top: number; width: number; height: number }) {
  render(<CompareSlider beforeSrc="blob:before" afterSrc="blob:after" width={400} height={300} beforeBox={beforeBox} />);
  return screen.getByRole('slider', { name: 'Before and after divider' });
}

describe('CompareSlider', () => {
  it('is a keyboard-operable slider with its values announced', async () => {
    const user = userEvent.setup();
    const slider = setup();
    expect(slider).toHaveAttribute('aria-valuemin', '0');
    expect(slider).toHaveAttribute('aria-valuemax', '100');
    expect(slider).toHaveAttribute('aria-valuenow', '50');
    await user.tab();
    expect(slider).toHaveFocus();
    await user.keyboard('{ArrowRight}{ArrowRight}');
    expect(slider).toHaveAttribute('aria-valuenow', '52');
    await user.keyboard('{Shift>}{ArrowLeft}{/Shift}');
    expect(slider).toHaveAttribute('aria-valuenow', '42');
    await user.keyboard('{PageUp}');
    expect(slider).toHaveAttribute('aria-valuenow', '52');
    await user.keyboard('{End}{ArrowRight}');
    expect(slider).toHaveAttribute('aria-valuenow', '100');
    await user.keyboard('{Home}{ArrowDown}');
    expect(slider).toHaveAttribute('aria-valuenow', '0');
    expect(slider).toHaveAttribute('aria-valuetext', '0% original, 100% result');
  });

  it('clips the original at the divider', async () => {
    const user = userEvent.setup();
    const slider = setup();
    slider.focus();
    await user.keyboard('{PageDown}{PageDown}');
    const original = screen.getByAltText('Original');
    expect(original.parentElement).toHaveStyle({ clipPath: 'inset(0 70% 0 0)' });
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
