"""Static files and the API documentation pages, all served from this machine.

- ``/static``: the workbench's own CSS and JavaScript (``api/web/static``).
- ``/assets/htmx``, ``/assets/swagger-ui``, ``/assets/redoc``: third-party browser assets that
  ``make setup`` installs from the npm registry into ``node_modules/`` (``npm ci``, pinned by
  package-lock.json).  Nothing is copied into the repository and nothing is loaded from a CDN.
- ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) use those local copies, so they work offline.
  Each answers with a Content-Security-Policy that allows exactly its own inline start-up script
  (by hash), not inline scripts in general.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.web.templating import security_headers

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
SOURCE_ROOT = Path(__file__).resolve().parents[2]
# URL prefix -> folder inside node_modules
NPM_ASSETS = {
    "/assets/htmx": "htmx.org/dist",
    "/assets/swagger-ui": "swagger-ui-dist",
    "/assets/redoc": "redoc/bundles",
}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
_INLINE_STYLE = re.compile(r"<style>(.*?)</style>", re.S)


def node_modules(configured: str) -> Path:
    return Path(configured) if configured else SOURCE_ROOT / "node_modules"


def _hashes(pattern: re.Pattern[str], html: str) -> str:
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(m.encode()).digest()).decode()}'"
                    for m in pattern.findall(html))


def mount_assets(app: FastAPI, assets_dir: str) -> None:
    """Mount /static and the npm assets; warn (and answer 404 for them) when ``npm ci`` has not run."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    root = node_modules(assets_dir)
    for prefix, sub in NPM_ASSETS.items():
        folder = root / sub
        if not folder.is_dir():
            log.warning("%s is missing: run `make setup` (npm ci) so %s can be served", folder, prefix)
        app.mount(prefix, StaticFiles(directory=folder, check_dir=False), name=prefix.strip("/").replace("/", "-"))

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - API",
            swagger_js_url="/assets/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/assets/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )
        html = bytes(page.body).decode()
        csp = (f"default-src 'self'; script-src 'self' {_hashes(_INLINE_SCRIPT, html)}; style-src 'self'; "
               "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
        return security_headers(HTMLResponse(html), csp)  # type: ignore[return-value]

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        page = get_redoc_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - API",
                              redoc_js_url="/assets/redoc/redoc.standalone.js", with_google_fonts=False,
                              redoc_favicon_url="/static/favicon.svg")
        html = bytes(page.body).decode()
        # ReDoc styles itself with styled-components (inline <style> it writes) and parses in a blob: worker.
        csp = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
        return security_headers(HTMLResponse(html), csp)  # type: ignore[return-value]
