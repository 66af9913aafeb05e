"""/docs (Swagger UI) and /redoc, with every script and style served by the endpoint itself.

FastAPI's own pages load Swagger UI and ReDoc from a CDN: blank pages on a machine without
internet. The files come from the fastapi-offline package (MIT; it ships Swagger UI, Apache
2.0, and ReDoc, MIT), mounted under /docs-static. A Content-Security-Policy keeps both pages
on this origin: ReDoc's sidebar would otherwise fetch its maker's logo from a CDN.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC_URL", "add_docs"]

STATIC_URL = "/docs-static"
# Inline script and style: the pages FastAPI renders start Swagger UI inline; ReDoc runs its
# search in a worker made from a blob.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:"
)


def add_docs(app: FastAPI) -> None:
    """Serve Swagger UI at /docs and ReDoc at /redoc from the package's files (create the app
    with docs_url=None, redoc_url=None)."""
    static = files("fastapi_offline") / "static"
    app.mount(STATIC_URL, StaticFiles(directory=str(static)), name="docs-static")

    def local(request: Request, path: str) -> str:
        return f"{request.scope.get('root_path', '')}{path}"  # behind a proxy's path prefix

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=local(request, app.openapi_url or "/openapi.json"),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=local(request, f"{STATIC_URL}/swagger-ui-bundle.js"),
            swagger_css_url=local(request, f"{STATIC_URL}/swagger-ui.css"),
            swagger_favicon_url=local(request, f"{STATIC_URL}/favicon.png"),
            # no badge that sends the schema to swagger.io's validator
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=local(request, app.openapi_url or "/openapi.json"),
            title=f"{app.title} - ReDoc",
            redoc_js_url=local(request, f"{STATIC_URL}/redoc.standalone.js"),
            redoc_favicon_url=local(request, f"{STATIC_URL}/favicon.png"),
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return page
