"""The GraphQL playground at GET /graphql (a browser asking for HTML): GraphiQL from the app's own build.

The page is `graphiql.html` of the built frontend (frontend/graphiql.html and src/playground/), so it
loads nothing from a CDN and works offline. Its scripts and styles are served with the rest of the
build under /assets/. The page takes the dev user's token from /dev/token like the app does (that
endpoint answers only in dev mode, and only to local clients), so no token is written into the page.
"""

from __future__ import annotations

from pathlib import Path

import anyio
from starlette.responses import FileResponse, HTMLResponse, Response

__all__ = ["PAGE", "Playground"]

PAGE = "graphiql.html"

_MISSING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="color-scheme" content="dark">
<title>Safelight · GraphQL</title></head>
<body style="font-family: system-ui, sans-serif; background: #0e0e10; color: #ececf1; padding: 2rem">
<h1>GraphQL endpoint</h1>
<p>The playground is part of the web app's build, which this server does not have:
run <code>make frontend-build</code> (or <code>cd frontend &amp;&amp; npm run build</code>) and reload.</p>
<p>Meanwhile POST queries and mutations to this URL; subscriptions use the websocket at the same URL.</p>
</body></html>
"""


class Playground:
    """Serves the built playground page from `dist`, looked up on each request (a rebuild needs no restart)."""

    def __init__(self, dist: Path) -> None:
        self._page = dist / PAGE

    async def response(self) -> Response:
        if not await anyio.Path(self._page).is_file():
            return HTMLResponse(_MISSING, status_code=503, headers={"cache-control": "no-store"})
        return FileResponse(self._page, media_type="text/html", headers={"cache-control": "no-cache"})
