"""protocol.errors: every `error` on the wire is an `ErrorCode` member, stated by each exception
class and never derived from its Python name.

- Every error class of the project (found by walking the source tree with `ast`, then imported)
  has a member code, and its `as_dict` puts exactly that on the wire.
- A renamed subclass keeps its parent's wire code; a class that states none cannot be defined.
- Real bad requests to a DM region and a meeting region (REST, signaling, device channel) are
  answered with member codes.
"""

from __future__ import annotations

import ast
import importlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from protocol.dm_channel import CloseCode
from protocol.errors import ErrorCode, Invalid, NotFound, WireError
from protocol.signaling import SignalingClose
from services.common.errors import DomainError
from services.common.runtime import RegionRuntime, open_region

ROOT = Path(__file__).resolve().parents[2]
SKIP = {".venv", "tests", "node_modules", ".roomtrust", ".git"}
BASE_NAMES = {"WireError", "DomainError"}


def project_modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if SKIP & set(parts) or path.name == "__main__.py" or path.parent == ROOT:
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        yield name, ast.parse(path.read_text(), str(path))


def error_class_modules() -> dict[str, set[str]]:
    """Modules that define a subclass of an error class, and the class names (to a fixpoint: a
    subclass of a subclass counts too)."""
    trees = list(project_modules())
    error_names = set(BASE_NAMES) | {c.__name__ for c in all_subclasses(WireError)}
    found: dict[str, set[str]] = {}
    grew = True
    while grew:
        grew = False
        for module, tree in trees:
            for node in ast.walk(tree):
                if not isinstance(node, ast.ClassDef):
                    continue
                bases = {ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases}
                if bases & error_names:
                    found.setdefault(module, set()).add(node.name)
                    if node.name not in error_names:
                        error_names.add(node.name)
                        grew = True
    return found


def all_subclasses(cls: type[WireError]) -> set[type[WireError]]:
    out: set[type[WireError]] = set()
    for sub in cls.__subclasses__():
        out |= {sub, *all_subclasses(sub)}
    return out


def test_every_error_class_of_the_project_states_a_member_code() -> None:
    found = error_class_modules()
    assert {"Invalid", "FirmwareRejected"} <= set().union(*found.values())
    for module in found:
        importlib.import_module(module)
    classes = {c for c in all_subclasses(WireError) if c.__module__.split(".")[0] != "tests"}
    names = {c.__name__ for c in classes}
    assert set().union(*found.values()) <= names
    for cls in classes:
        assert isinstance(cls.code, ErrorCode), cls
        assert any("code" in vars(k) for k in cls.__mro__ if k is not WireError), cls
        error = cls.__new__(cls)
        error.reason, error.field = "r", None
        assert error.as_dict()["error"] == cls.code.value
        assert ErrorCode(str(error.as_dict()["error"])) is cls.code


def test_domain_error_is_the_wire_error() -> None:
    assert DomainError is WireError
    assert Invalid("bad", "x").as_dict() == {"error": "Invalid", "field": "x", "reason": "bad"}


def test_a_renamed_subclass_keeps_the_wire_code() -> None:
    class Renamed(Invalid):
        pass

    class SomethingElseEntirely(NotFound):
        status = 410

    assert Renamed("bad", "field").as_dict()["error"] == "Invalid"
    assert SomethingElseEntirely("gone").as_dict()["error"] == "NotFound"


def test_an_error_class_without_a_code_cannot_be_defined() -> None:
    with pytest.raises(TypeError, match="must state its wire code"):

        class Nameless(WireError):  # negative control: no code at all
            pass

    with pytest.raises(TypeError, match="must state its wire code"):

        class Stringly(WireError):
            code = "Invalid"  # type: ignore[assignment]  # a string is not a member


# -- real bad requests --------------------------------------------------------------------------


def assert_member(body: Any) -> str:
    assert isinstance(body, dict), body
    code = body.get("error")
    assert code in set(ErrorCode), body
    return str(code)


@pytest.fixture
def dm_runtime(tmp_path: Path, schema_prefix: str) -> Iterator[RegionRuntime]:
    from services.dm.main import MIGRATIONS

    runtime = open_region("dm", f"e{secrets.token_hex(3)}", tmp_path, MIGRATIONS)
    yield runtime
    runtime.engine.dispose()


@pytest.fixture
def meeting_runtime(tmp_path: Path, schema_prefix: str) -> Iterator[RegionRuntime]:
    from services.meeting.main import MIGRATIONS

    region = "".join(secrets.choice("abcdefgh") for _ in range(6))
    runtime = open_region("meeting", region, tmp_path, MIGRATIONS)
    yield runtime
    runtime.engine.dispose()


def test_bad_requests_to_a_dm_region_are_answered_with_member_codes(
    dm_runtime: RegionRuntime,
) -> None:
    from services.dm.api.app import build_app

    with TestClient(build_app(dm_runtime)) as client:
        codes = {
            assert_member(client.post("/v1/auth/login", json={}).json()),
            assert_member(
                client.post("/v1/auth/login", json={"email": "x@y.z", "password": "p"}).json()
            ),
            assert_member(client.get("/v1/devices").json()),
        }
        with (
            pytest.raises(WebSocketDisconnect) as closed,
            client.websocket_connect("/v1/device/commands") as socket,
        ):
            socket.receive_json()
    assert closed.value.code == CloseCode.REVOKED
    assert codes >= {ErrorCode.INVALID, ErrorCode.UNAUTHENTICATED}


def test_bad_requests_to_a_meeting_region_are_answered_with_member_codes(
    meeting_runtime: RegionRuntime,
) -> None:
    from services.meeting.api.app import build_app

    with TestClient(build_app(meeting_runtime)) as client:
        codes = {
            assert_member(client.post("/v1/auth/login", json={}).json()),
            assert_member(
                client.post("/v1/auth/login", json={"username": "x", "password": "p"}).json()
            ),
            assert_member(client.get("/v1/me").json()),
        }
        with client.websocket_connect("/v1/signaling") as socket:
            socket.send_json({"type": "auth", "token": "not-a-token"})
            refusal = socket.receive_json()
            assert refusal["type"] == "error"
            codes.add(assert_member(refusal))
            with pytest.raises(WebSocketDisconnect) as closed:
                socket.receive_json()
    assert closed.value.code == SignalingClose.UNAUTHENTICATED
    assert codes >= {ErrorCode.INVALID, ErrorCode.UNAUTHENTICATED}
