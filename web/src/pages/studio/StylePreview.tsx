// Preview images for the style presets: one small scene (a lighthouse on a headland) drawn in each
// style as inline SVG, so the gallery shows what a preset does without shipping sample renders
// (the demo model could not make real ones, and SDXL outputs are large). Presets an operator adds
// to config/models.yaml get the neutral scene.

import type { ReactElement } from 'react';

const W = 120;
const H = 80;

function Scene({ sky, sea, land, tower, light, stroke, strokeWidth = 0 }: {
  sky: string;
  sea: string;
  land: string;
  tower: string;
  light: string;
  stroke?: string;
  strokeWidth?: number;
}) {
  const line = stroke ? { stroke, strokeWidth, strokeLinejoin: 'round' as const } : {};
  return (
    <>
      <rect width={W} height={H} fill={sky} />
      <rect y={52} width={W} height={28} fill={sea} {...line} />
      <path d="M0 58 Q30 40 62 48 T120 60 V80 H0Z" fill={land} {...line} />
      <path d="M78 50 L82 22 H90 L94 50Z" fill={tower} {...line} />
      <rect x={80} y={16} width={12} height={7} fill={light} {...line} />
    </>
  );
}

const PREVIEWS: Record<string, () => ReactElement> = {
  photorealistic: () => (
    <>
      <defs>
        <linearGradient id="sp-photo-sky" x1="0" y1="0" x2="0" y2="1">
          <stop offset="0" stopColor="#5b8fc7" />
          <stop offset="1" stopColor="#f3c98b" />
        </linearGradient>
        <linearGradient id="sp-photo-sea" x1="0" y1="0" x2="0" y2="1">
          <stop offset="0" stopColor="#3d6d8f" />
          <stop offset="1" stopColor="#16324a" />
        </linearGradient>
      </defs>
      <Scene sky="url(#sp-photo-sky)" sea="url(#sp-photo-sea)" land="#4d5b3a" tower="#e9e4da" light="#ffe9a8" />
      <circle cx={30} cy={40} r={7} fill="#fff4d6" opacity={0.85} />
    </>
  ),
  anime: () => (
    <>
      <Scene sky="#7ec8f2" sea="#2f8fd8" land="#5cc46a" tower="#ffffff" light="#ffd43b" stroke="#1b1b3a" strokeWidth={1.6} />
      <path d="M10 20 q8 -8 16 0 q8 -6 14 2 H10Z" fill="#fff" stroke="#1b1b3a" strokeWidth={1.2} />
    </>
  ),
  artistic: () => (
    <>
      <Scene sky="#f0a35e" sea="#34589a" land="#6a7d3a" tower="#f2e8cf" light="#ffdd55" />
      <g opacity={0.55} fill="none" strokeLinecap="round" strokeWidth={4}>
        <path d="M4 12 q20 -8 40 0 t40 0" stroke="#d9534f" />
        <path d="M20 30 q20 -8 40 0 t40 0" stroke="#f7d774" />
        <path d="M0 66 q20 -6 40 0 t40 0 t40 0" stroke="#6fa8dc" />
      </g>
    </>
  ),
  'technical-diagram': () => (
    <>
      <rect width={W} height={H} fill="#ffffff" />
      <g fill="none" stroke="#0b4f8a" strokeWidth={1.2}>
        <path d="M0 58 Q30 40 62 48 T120 60" />
        <path d="M78 50 L82 22 H90 L94 50Z" />
        <rect x={80} y={16} width={12} height={7} />
        <path d="M70 22 H60 M70 50 H60 M65 22 V50" strokeDasharray="2 2" />
      </g>
      <g fill="#0b4f8a" fontSize={7} fontFamily="sans-serif">
        <text x={36} y={38}>
          28 m
        </text>
        <text x={96} y={20}>
          A
        </text>
      </g>
    </>
  ),
  logo: () => (
    <>
      <rect width={W} height={H} fill="#f4f6f8" />
      <circle cx={60} cy={40} r={26} fill="#0066cc" />
      <path d="M54 58 L57 26 H63 L66 58Z" fill="#ffffff" />
      <rect x={55} y={21} width={10} height={5} fill="#ffd43b" />
      <path d="M38 58 H82" stroke="#ffffff" strokeWidth={3} strokeLinecap="round" />
    </>
  ),
  sketch: () => (
    <>
      <rect width={W} height={H} fill="#f7f5f0" />
      <g fill="none" stroke="#3a3a3a" strokeWidth={1} strokeLinecap="round">
        <path d="M0 58 Q30 40 62 48 T120 60" />
        <path d="M1 59 Q31 42 62 49 T119 61" opacity={0.5} />
        <path d="M78 50 L82 22 H90 L94 50Z" />
        <rect x={80} y={16} width={12} height={7} />
        <path d="M10 70 l8 -8 M20 72 l8 -8 M30 72 l8 -8 M40 73 l8 -8 M50 73 l8 -8 M83 46 l6 -6 M82 40 l8 -8" opacity={0.7} />
      </g>
    </>
  ),
  cinematic: () => (
    <>
      <Scene sky="#1d3b4f" sea="#0f2533" land="#1b1f1a" tower="#c9a27a" light="#ffb347" />
      <path d="M92 19 L120 8 V30Z" fill="#ffb347" opacity={0.45} />
      <rect width={W} height={10} fill="#000" />
      <rect y={70} width={W} height={10} fill="#000" />
    </>
  ),
};

function Neutral() {
  return <Scene sky="#cfe0f1" sea="#8fb3d6" land="#9bb07f" tower="#f4f4f4" light="#ffe08a" />;
}

/** Decorative: the preset's name and description are the accessible text beside it. */
export function StylePreview({ name }: { name: string | null }) {
  const Draw = (name && PREVIEWS[name]) || Neutral;
  return (
    <svg className="style-preview" viewBox={`0 0 ${W} ${H}`} aria-hidden="true" focusable="false">
      <Draw />
    </svg>
  );
}
