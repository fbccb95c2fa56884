"""Fuzzing the meeting OpenAPI with schemathesis: no generated request gets a 5xx answer, whether
anonymous or as a logged-in administrator. Runs the app in-process, a bounded number of examples."""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from services.common.runtime import RegionRuntime
from services.meeting.api.app import build_app

# `make fuzz` raises this for a longer run; the default keeps `make test` quick
MAX_EXAMPLES = int(os.environ.get("ROOMTRUST_FUZZ_EXAMPLES", "12"))
STATUSES: dict[int, int] = {}


@pytest.fixture(scope="module")
def meeting_app(inprocess_runtime: RegionRuntime) -> Any:
    return build_app(inprocess_runtime)


@pytest.fixture(scope="module")
def admin_token(meeting_app: Any) -> str:
    with TestClient(meeting_app) as client:
        body = {
            "name": "Fuzz Corp",
            "admin": {
                "username": "fuzz-admin@example.com",
                "password": "correct horse battery",
                "first_name": "F",
                "last_name": "Z",
                "display_name": "Fuzz",
                "address": "1 Fuzz Way",
                "company": "Fuzz Corp",
            },
        }
        assert client.post("/v1/enterprises", json=body).status_code == 201
        login = client.post(
            "/v1/auth/login",
            json={"username": "fuzz-admin@example.com", "password": "correct horse battery"},
        )
        token: str = login.json()["token"]
        return token


def test_no_generated_request_gets_a_server_error(meeting_app: Any, admin_token: str) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", meeting_app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 25, "the OpenAPI document lost its operations"
    calls = 0
    for operation in operations:
        strategy = operation.as_strategy()

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=strategy)
        def no_server_error(case: Any) -> None:
            nonlocal calls
            logged_in = {"Authorization": f"Bearer {admin_token}"}
            # logging out would end the administrator's session for every later example
            for headers in ({}, {} if case.path == "/v1/auth/logout" else logged_in):
                response = case.call(headers=headers)
                calls += 1
                STATUSES[response.status_code] = STATUSES.get(response.status_code, 0) + 1
                assert response.status_code < 500, (
                    case.method,
                    case.formatted_path,
                    response.status_code,
                    response.text,
                )

        no_server_error()
    assert calls >= len(operations) * 2
    # the fuzzing reached the handlers, not only the authentication gate
    assert sum(n for status, n in STATUSES.items() if status < 300) > len(operations) // 2
