"""The web app: static files from the Vite build, client-route fallback, security headers.

Installed as the router's *default* app (what runs when no route matched), not as a catch-all
route: every API route wins whatever order routers are added in, and a path under an API prefix
that matches nothing still gets the JSON 404.
"""

from __future__ import annotations

import gzip
import logging
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from fimum_ai.settings import Settings

log = logging.getLogger(__name__)

PACKAGE_STATIC_DIR = Path(__file__).parent / "static"

# Never answered with the app: a typo under these gets the API's JSON 404, not an HTML page.
RESERVED_PREFIXES = ("/api/", "/v1/", "/ws/", "/docs", "/redoc", "/openapi.json", "/healthz", "/metrics")

# The app needs nothing from other origins. 'self' covers same-origin ws:/wss: (CSP Level 3).
# blob:/data: images: thumbnails fetched with the bearer token and latent previews.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob:",
        "font-src 'self'",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "manifest-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
HTML_HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    # The shell is tiny and names the current hashed bundles: always revalidate it.
    "Cache-Control": "no-cache",
}
# Vite puts content-hashed file names under assets/: they never change, so cache them for a year.
IMMUTABLE = "public, max-age=31536000, immutable"
_COMPRESSIBLE = (".js", ".css", ".html", ".svg", ".json", ".txt", ".map", ".webmanifest")
_GZIP_MIN_BYTES = 512


@dataclass(frozen=True)
class _Asset:
    body: bytes
    gzipped: bytes | None
    media_type: str


class WebApp:
    """ASGI app serving the built SPA from `static_dir` (read at request time: a rebuild needs no restart)."""

    def __init__(self, static_dir: Path) -> None:
        self.static_dir = static_dir.resolve()
        # Compressed once per file version: (path, mtime_ns, size) -> asset.
        self._cache: dict[tuple[Path, int, int], _Asset] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "/")
        if scope["type"] != "http" or path.startswith(RESERVED_PREFIXES):
            await _not_found(scope, receive, send)
            return
        request = Request(scope, receive)
        if request.method not in ("GET", "HEAD"):
            raise HTTPException(status_code=405, headers={"Allow": "GET, HEAD"})
        response = self._respond(request, path)
        await response(scope, receive, send)

    def _respond(self, request: Request, path: str) -> Response:
        index = self.static_dir / "index.html"
        if not index.is_file():
            return JSONResponse(
                {
                    "error": {
                        "code": "web_app_not_built",
                        "message": "the web app is not built: run `make web` "
                        "(or `cd web && npm ci && npm run build`); the API is at /docs",
                        "details": {"static_dir": str(self.static_dir)},
                    }
                },
                status_code=503,
                headers=SECURITY_HEADERS,
            )
        relative = path.lstrip("/")
        file = self._file(relative)
        if file is not None:
            cache = IMMUTABLE if relative.startswith("assets/") else "no-cache"
            headers = HTML_HEADERS if file.suffix == ".html" else {**SECURITY_HEADERS, "Cache-Control": cache}
            return self._serve(request, file, headers)
        # A missing asset is a 404 (an HTML page where a script was expected only confuses);
        # anything else is a client route: the app decides what to show, including its own 404.
        last_segment = relative.rsplit("/", 1)[-1]
        if relative.startswith("assets/") or "." in last_segment:
            raise HTTPException(status_code=404)
        return self._serve(request, index, HTML_HEADERS)

    def _file(self, relative: str) -> Path | None:
        if not relative:
            return None
        candidate = (self.static_dir / relative).resolve()
        # No escaping the static dir (`..`, symlinks pointing out).
        if not candidate.is_relative_to(self.static_dir) or not candidate.is_file():
            return None
        return candidate

    def _serve(self, request: Request, file: Path, headers: dict[str, str]) -> Response:
        asset = self._load(file)
        accepts_gzip = "gzip" in request.headers.get("accept-encoding", "")
        out = dict(headers)
        body = asset.body
        if asset.gzipped is not None:
            out["Vary"] = "Accept-Encoding"
            if accepts_gzip:
                body = asset.gzipped
                out["Content-Encoding"] = "gzip"
        if request.method == "HEAD":
            out["Content-Length"] = str(len(body))
            return Response(status_code=200, headers=out, media_type=asset.media_type)
        return Response(body, headers=out, media_type=asset.media_type)

    def _load(self, file: Path) -> _Asset:
        stat = file.stat()
        key = (file, stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        body = file.read_bytes()
        compress = file.suffix in _COMPRESSIBLE and len(body) >= _GZIP_MIN_BYTES
        media_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if media_type.startswith("text/") or media_type in ("application/javascript", "image/svg+xml"):
            media_type += "; charset=utf-8"
        asset = _Asset(body, gzip.compress(body, compresslevel=9, mtime=0) if compress else None, media_type)
        # Drop older versions of this file (a rebuild while serving); the set of files is small.
        for old in [k for k in self._cache if k[0] == file]:
            del self._cache[old]
        self._cache[key] = asset
        return asset


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1000})
        return
    raise HTTPException(status_code=404)


def static_dir(settings: Settings) -> Path:
    return settings.web.static_dir or PACKAGE_STATIC_DIR


def install(app: FastAPI, settings: Settings) -> WebApp:
    """Serve the web app for every path no route matched."""
    web = WebApp(static_dir(settings))
    app.router.default = web
    if not (web.static_dir / "index.html").is_file():
        log.warning(
            "the web app is not built; / answers 503 until `make web` builds it",
            extra={"static_dir": str(web.static_dir)},
        )
    return web
