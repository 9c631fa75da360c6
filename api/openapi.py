"""The OpenAPI document and its docs pages, served with no CDN: Swagger UI at /schema, Redoc at /schema/redoc.

Litestar's render plugins load their JavaScript, CSS, fonts and favicon from public CDNs by default, so on
a machine without internet `/schema` is a white page. Here Swagger UI's bundle, standalone preset and CSS
are the files `litestar-offline-docs` ships, and Redoc's standalone bundle is vendored in `static/redoc/`
(no framework-free PyPI package ships it; its README says where it came from). One static-files router
serves both under `ASSETS_PATH`; favicons and Google Fonts are dropped.

Error responses in the document carry written examples (`error_response`), not generated ones: the
generated ones are random Faker objects (`"status_code": 6404`).
"""

from __future__ import annotations

from pathlib import Path

import litestar_offline_docs
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, RedocRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, Example, SecurityScheme, Tag
from litestar.router import Router
from litestar.static_files import create_static_files_router

from streamrec.api.schemas import ErrorBody

SCHEMA_PATH = "/schema"
ASSETS_PATH = "/schema-assets"
ASSETS_DIR = Path(litestar_offline_docs.__file__).parent / "static"
REDOC_DIR = Path(__file__).parent / "static" / "redoc"

TAGS = [
    Tag(name="recommendations", description="Pages of items, every slot logged with its propensity."),
    Tag(name="events", description="Outcomes on served items, stored durably before the answer."),
    Tag(name="operations", description="Health, serving version and Prometheus metrics."),
    Tag(name="admin", description="Reload and canary control; bearer token STREAMREC_ADMIN_TOKEN."),
]


def error_response(description: str, status_code: int, detail: str) -> ResponseSpec:
    """An error response spec with one written example body (`{"status_code": ..., "detail": ...}`)."""
    return ResponseSpec(
        ErrorBody,
        description=description,
        generate_examples=False,
        examples=[Example(summary=description, value={"status_code": status_code, "detail": detail})],
    )


def assets_router() -> Router:
    """Serves Swagger UI's JavaScript and CSS and Redoc's bundle from the installed package (no internet needed)."""
    return create_static_files_router(path=ASSETS_PATH, directories=[ASSETS_DIR, REDOC_DIR], name="docs-assets")


def openapi_config() -> OpenAPIConfig:
    """The OpenAPI document at /schema/openapi.json (and .yaml); Swagger UI at /schema and /schema/swagger, Redoc at
    /schema/redoc."""
    swagger = SwaggerRenderPlugin(
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        path=["/", "/swagger"],
        favicon="",  # the default is a CDN URL
    )
    redoc = RedocRenderPlugin(
        js_url=f"{ASSETS_PATH}/redoc.standalone.js",
        google_fonts=False,  # fonts.googleapis.com: unreachable offline
        path="/redoc",
        favicon="",
    )
    return OpenAPIConfig(
        title="StreamRec serving API",
        version="1.0.0",
        description=(
            "Recommendations with logged propensities, outcome events, health, versions, canary control. "
            "Every error answer is JSON `{status_code, detail}` with a sentence naming the problem."
        ),
        path=SCHEMA_PATH,
        use_handler_docstrings=True,  # each handler's docstring is its operation description
        tags=TAGS,
        render_plugins=[swagger, redoc, JsonRenderPlugin(), YamlRenderPlugin()],
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(type="http", scheme="bearer", description="STREAMREC_ADMIN_TOKEN")
            }
        ),
    )
