/// <reference types="vitest/config" />
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The build goes into the Python package, so `fimum serve` (and a wheel) ships the app.
const outDir = fileURLToPath(new URL('../src/fimum_ai/static', import.meta.url));
// `npm run dev` proxies the API to a running `fimum serve` (default port 8000).
const apiTarget = process.env.FIMUM_API ?? 'http://127.0.0.1:8000';

export default defineConfig({
  plugins: [react()],
  build: {
    outDir,
    emptyOutDir: true,
    // Hashed file names under assets/: the server caches them for a year (see src/fimum_ai/web.py).
    assetsDir: 'assets',
    sourcemap: false,
    target: 'es2022',
    reportCompressedSize: false,
  },
  server: {
    proxy: {
      '/api': { target: apiTarget, ws: true },
      '/v1': apiTarget,
      '/docs': apiTarget,
      '/openapi.json': apiTarget,
      '/healthz': apiTarget,
    },
  },
  test: {
    environment: 'jsdom',
    globals: true,
    setupFiles: ['./src/test/setup.ts'],
    include: ['src/**/*.test.{ts,tsx}'],
    css: false,
    restoreMocks: true,
  },
});
