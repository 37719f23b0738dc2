"""GET /graphql from a browser serves the playground from the frontend build, never from a CDN.

No browser needed: the app is given a stand-in build directory. The Chromium test that runs the real
playground offline is tests/browser/test_frontend.py::test_graphiql_offline_runs_a_subscription.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from graph.app import create_app
from settings import Settings
from tests.stack import serve

PAGE = '<!doctype html><title>playground</title><script type="module" src="/assets/graphiql-x.js"></script>'
BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


async def test_graphql_get_serves_the_built_playground(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>app</title>")
    (tmp_path / "graphiql.html").write_text(PAGE)
    async with serve(create_app(settings, frontend_dir=tmp_path)) as url, httpx.AsyncClient(timeout=10) as http:
        page = await http.get(f"{url}/graphql", headers=BROWSER)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.text == PAGE
        # Queries still work at the same URL.
        answer = await http.post(f"{url}/graphql", json={"query": "{ __typename }"})
        assert answer.json() == {"data": {"__typename": "Query"}}


async def test_graphql_get_without_a_build_says_how_to_build_and_loads_nothing_remote(
    settings: Settings, tmp_path: Path
) -> None:
    async with serve(create_app(settings, frontend_dir=tmp_path)) as url, httpx.AsyncClient(timeout=10) as http:
        page = await http.get(f"{url}/graphql", headers=BROWSER)
    assert page.status_code == 503
    assert "make frontend-build" in page.text
    assert "http://" not in page.text and "https://" not in page.text
