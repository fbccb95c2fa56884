"""The DM API's route table and OpenAPI document: every route the service had is still served, each
answers with a declared response model, and the OpenAPI document gives a response schema for every
operation. Each check also runs on a small app made to fail it (its negative control)."""

from __future__ import annotations

import secrets
import typing
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, Response
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from pydantic import BaseModel

from services.common.runtime import open_region
from services.dm.api.app import build_app
from services.dm.main import MIGRATIONS

# Routes that answer raw bytes, not JSON: their OpenAPI entry documents the body instead.
RAW_BODY_ROUTES = {("GET", "/v1/device/firmware/{download_id}")}

SERVED = {
    ("GET", "/healthz"),
    ("POST", "/v1/enterprises"),
    ("POST", "/v1/auth/login"),
    ("GET", "/v1/oplog"),
    ("POST", "/v1/sites"),
    ("GET", "/v1/sites"),
    ("POST", "/v1/devices"),
    ("GET", "/v1/devices"),
    ("DELETE", "/v1/devices/{device_id}"),
    ("POST", "/v1/config/profiles"),
    ("POST", "/v1/config/profiles/{profile_id}/push"),
    ("GET", "/v1/config/profiles/{profile_id}/status"),
    ("GET", "/v1/config/drift"),
    ("POST", "/v1/devices/{device_id}/diagnostics"),
    ("GET", "/v1/diagnostics"),
    ("GET", "/v1/diagnostics/{bundle_id}"),
    ("POST", "/v1/device/diagnostics"),
    ("GET", "/v1/alerts"),
    ("POST", "/v1/alerts/{alert_id}/acknowledge"),
    ("POST", "/v1/alerts/{alert_id}/clear"),
    ("GET", "/v1/firmware/release-key"),
    ("POST", "/v1/firmware/images"),
    ("GET", "/v1/firmware/images"),
    ("GET", "/v1/device/firmware/{download_id}"),
    ("POST", "/v1/rollouts"),
    ("GET", "/v1/rollouts"),
    ("GET", "/v1/rollouts/{rollout_id}"),
    ("POST", "/v1/rollouts/{rollout_id}/{op}"),
    ("POST", "/v1/enroll"),
    ("POST", "/v1/device/certificate"),
    ("POST", "/v1/devices/{device_id}/actions"),
    ("POST", "/v1/devices/actions"),
    ("POST", "/v1/device/heartbeat"),
    ("POST", "/v1/device/telemetry"),
    ("POST", "/v1/device/health"),
    ("GET", "/v1/device/ping"),
    ("WEBSOCKET", "/v1/device/commands"),
}


@pytest.fixture(scope="module")
def dm_app(tmp_path_factory: pytest.TempPathFactory, schema_prefix: str) -> Iterator[FastAPI]:
    runtime = open_region(
        "dm", f"r{secrets.token_hex(3)}", tmp_path_factory.mktemp("dm-routes"), MIGRATIONS
    )
    yield build_app(runtime)
    runtime.engine.dispose()


def served_routes(app: FastAPI) -> dict[tuple[str, str], APIRoute | APIWebSocketRoute]:
    """Every route the app serves, by (method, path), however deep its router is included."""
    routes: dict[tuple[str, str], APIRoute | APIWebSocketRoute] = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIWebSocketRoute):
            routes["WEBSOCKET", str(context.path)] = route
        elif isinstance(route, APIRoute):
            for method in route.methods or ():
                routes[method, str(context.path)] = route
    return routes


def _is_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    args = typing.get_args(annotation)
    return typing.get_origin(annotation) is list and len(args) == 1 and _is_model(args[0])


def routes_without_response_model(app: FastAPI) -> list[str]:
    """Routes that declare no pydantic response model (a model or a list of one). Excepted, by
    name: WebSocket routes, 204 routes (no body) and the raw-body routes of RAW_BODY_ROUTES."""
    missing = []
    for (method, path), route in served_routes(app).items():
        if isinstance(route, APIWebSocketRoute):
            continue
        if route.status_code == 204 or (method, path) in RAW_BODY_ROUTES:
            continue
        if not _is_model(route.response_model):
            missing.append(f"{method} {path}")
    return sorted(missing)


def _describes(schema: dict[str, Any]) -> bool:
    if "$ref" in schema:
        return True
    if schema.get("type") == "array":
        return _describes(schema.get("items") or {})
    return schema.get("type") == "string" and schema.get("format") == "binary"


def operations_without_response_schema(spec: dict[str, Any]) -> list[str]:
    """Operations whose success answer has no named schema (a component, a list of one, or a
    binary body): an empty or free-form object schema does not count. 204 answers are excepted."""
    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            success = sorted(code for code in operation["responses"] if code.startswith("2"))
            if success == ["204"]:
                continue  # no body to describe
            content = operation["responses"][success[0]].get("content", {}) if success else {}
            if not any(_describes(media.get("schema") or {}) for media in content.values()):
                missing.append(f"{method.upper()} {path}")
    return sorted(missing)


def test_every_route_of_the_service_is_still_served(dm_app: FastAPI) -> None:
    assert set(served_routes(dm_app)) == SERVED


def test_every_route_declares_a_response_model(dm_app: FastAPI) -> None:
    assert routes_without_response_model(dm_app) == []


def test_the_openapi_document_has_a_response_schema_per_operation(dm_app: FastAPI) -> None:
    spec = dm_app.openapi()
    assert len([op for ops in spec["paths"].values() for op in ops]) == len(SERVED) - 1
    assert operations_without_response_schema(spec) == []


def test_response_models_refuse_fields_they_do_not_declare(dm_app: FastAPI) -> None:
    """So a field the domain adds without its model fails loudly instead of leaving the answer."""
    schemas = dm_app.openapi()["components"]["schemas"]
    out = {name: s for name, s in schemas.items() if name.endswith("Out")}
    assert out, "no response model in the OpenAPI document"
    assert {name for name, s in out.items() if s.get("additionalProperties") is not False} == set()


# -- negative controls: an app built to fail each check -----------------------------------------


class Thing(BaseModel):
    name: str


def _bad_app() -> FastAPI:
    app = FastAPI()
    nested = APIRouter()

    @nested.get("/free-form")
    async def free_form() -> dict[str, Any]:  # inferred model: a bare dict
        return {}

    @nested.get("/raw")
    async def raw() -> Response:
        return Response(b"")

    @nested.get("/fine", response_model=list[Thing])
    async def fine() -> list[Thing]:
        return []

    @nested.delete("/gone", status_code=204)
    async def gone() -> None:
        return None

    @nested.websocket("/socket")
    async def socket() -> None:
        return None

    outer = APIRouter()
    outer.include_router(nested)
    app.include_router(outer)
    return app


def test_negative_control_a_route_without_a_model_is_found_behind_nested_routers() -> None:
    app = _bad_app()
    assert ("WEBSOCKET", "/socket") in served_routes(app)
    assert routes_without_response_model(app) == ["GET /free-form", "GET /raw"]


def test_negative_control_an_operation_without_a_named_schema_is_found() -> None:
    spec = _bad_app().openapi()
    assert operations_without_response_schema(spec) == ["GET /free-form", "GET /raw"]
