"""Every route of the meeting API declares what it answers, so the OpenAPI document describes every
response: a route without a response model (or with an untyped `dict`/`Any` one) fails. WebSocket
routes and 204 routes have no body to describe and are excepted, by their kind."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, WebSocket
from fastapi.routing import APIRoute, APIWebSocketRoute
from pydantic import BaseModel
from starlette.routing import BaseRoute

from services.common.runtime import RegionRuntime
from services.meeting.api.app import build_app

# FastAPI's own pages (the OpenAPI document and its viewers), not routes of the service
FASTAPI_PAGES = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
SCALARS = (str, int, float, bool, bytes)


def described(annotation: Any) -> bool:
    """A response type the OpenAPI document can spell out: models, scalars, lists and string-keyed
    maps of them. `Any`, a bare `dict` or `None` say nothing."""
    if isinstance(annotation, type) and issubclass(annotation, (BaseModel, *SCALARS)):
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list:
        return described(args[0])
    if origin is dict:
        return args[0] is str and described(args[1])
    if origin in (typing.Union, types.UnionType):
        return all(described(a) for a in args if a is not type(None))
    return False


def walk(routes: Sequence[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, those of included routers too (FastAPI keeps an included router as one entry
    of `app.routes` that holds the router it includes)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from walk(included.routes)
        else:
            yield route


def undescribed_routes(app: FastAPI) -> list[str]:
    missing = []
    for route in walk(app.routes):
        if isinstance(route, APIWebSocketRoute):
            continue  # a WebSocket has no HTTP response to describe
        if isinstance(route, APIRoute):
            if route.status_code == 204:
                continue  # no content
            if not described(route.response_model):
                missing.append(f"{sorted(route.methods or ())} {route.path}")
        elif getattr(route, "path", None) not in FASTAPI_PAGES:
            missing.append(f"{type(route).__name__} {getattr(route, 'path', route)}")
    return missing


def test_every_meeting_route_has_a_response_model(inprocess_runtime: RegionRuntime) -> None:
    app = build_app(inprocess_runtime)
    api_routes = [r for r in walk(app.routes) if isinstance(r, APIRoute)]
    assert len(api_routes) >= 30, "the app lost its routes"
    sockets = [r.path for r in walk(app.routes) if isinstance(r, APIWebSocketRoute)]
    assert sockets == ["/v1/signaling"]
    assert undescribed_routes(app) == []


def test_the_openapi_document_describes_every_answer(inprocess_runtime: RegionRuntime) -> None:
    spec = build_app(inprocess_runtime).openapi()
    bare = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            ok = [str(s) for s in operation["responses"] if str(s).startswith("2")]
            for status in ok:
                content = operation["responses"][status].get("content", {})
                schemas = [c.get("schema") for c in content.values()]
                if not schemas or not all(schemas) or {} in schemas:
                    bare.append(f"{method.upper()} {path} {status}")
    assert bare == []


def test_the_check_finds_routes_that_describe_nothing() -> None:
    """Negative control: untyped, `Any` and missing response models are found; a WebSocket and a
    204 route are not."""
    app = FastAPI()

    class Thing(BaseModel):
        name: str

    @app.get("/untyped")
    async def untyped() -> dict[str, Any]:
        return {}

    @app.get("/unannotated")
    async def unannotated():  # type: ignore[no-untyped-def]
        return {}

    @app.get("/any", response_model=Any)
    async def anything() -> Any:
        return {}

    @app.get("/model", response_model=Thing)
    async def model() -> Thing:
        return Thing(name="x")

    @app.get("/list", response_model=list[Thing])
    async def many() -> list[Thing]:
        return []

    @app.delete("/gone", status_code=204)
    async def gone() -> None:
        return None

    @app.websocket("/socket")
    async def socket(ws: WebSocket) -> None:
        await ws.close()

    router = APIRouter()

    @router.get("/included")
    async def included() -> dict[str, Any]:
        return {}

    app.include_router(router)

    assert undescribed_routes(app) == [
        "['GET'] /untyped",
        "['GET'] /unannotated",
        "['GET'] /any",
        "['GET'] /included",
    ]
