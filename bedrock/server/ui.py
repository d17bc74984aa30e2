"""The chat page: `GET /` and its static files under `/ui/`, served with a Content-Security-Policy.

The page (`bedrock/server/static/`) is plain HTML, CSS and ES modules: no build step, so `make run` needs no
Node. It talks to the same `POST /invocations` as every other client (`run`, `cancel`, `resume`, `status`,
`history`, `memories`, `forget`), so what it shows is what AgentCore would serve; opened as `/?transport=ws` it
sends the same payloads over one WebSocket to `/ws` (bedrock/server/websocket.py) instead, falling back to the
POSTs when the socket cannot open or drops. `SERVE_UI=0` leaves both routes out (the container's default: AgentCore
routes only `/invocations` and `/ping`).

The policy allows nothing inline: no inline script or style, no `eval`, nothing from another origin; the page
inserts every prompt and answer as text (`textContent`), so a reply holding markup cannot run, and if it ever
were inserted as HTML by mistake, the policy would still refuse its inline handlers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).with_name("static")

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    # 'self' covers the page's own `/ws` too: CSP Level 3 matches it to the same host and port over ws: (from an
    # http page) and wss: (from either), as Chromium 71+, Firefox and Safari 16+ do. Naming the socket's URL instead
    # would mean a policy per request's Host (the page is reached as localhost, 127.0.0.1, a LAN address …) only for
    # older ones (Safari before 16, Chromium before 71); in those the socket fails to open and the page uses POSTs.
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
))

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class PageFiles(StaticFiles):
    """StaticFiles whose every file goes out with the page's security headers."""

    def file_response(self, full_path: Any, stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(SECURITY_HEADERS)
        return response


async def page(request: Request) -> Response:
    """`GET /`: the chat page itself (revalidated on every load, so a new version shows at once)."""
    return FileResponse(STATIC / "index.html", headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})


def ui_routes() -> list[Route | Mount]:
    """The page's routes, for `build_app` to add when SERVE_UI is on."""
    return [Route("/", page, methods=["GET", "HEAD"]), Mount("/ui", app=PageFiles(directory=STATIC), name="ui")]
