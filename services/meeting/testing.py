"""One live meeting stack shared by the meeting tests and features of a pytest session.

Both `tests/meeting` and `features/` ask for the four meeting regions; starting them once saves a
stack start per run. Each user acquires it and releases it; the last release stops the processes.
Only region sa gets media relays (two, so it can fail over) and a PSTN gateway: the media scenarios
run there, and the other regions' tests need no media.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.local import stack as local_stack

_shared: dict[str, Any] = {}
MEDIA_REGION = "sa"
MEDIA_RELAYS = {MEDIA_REGION: 2}


def acquire(home: Path, schema_prefix: str) -> dict[str, Any]:
    if not _shared:
        started = local_stack.start(
            home,
            services=["meeting"],
            schema_prefix=schema_prefix,
            relays=MEDIA_RELAYS,
            pstn=[MEDIA_REGION],
        )
        _shared.update(stack=started, home=home, users=0)
    _shared["users"] += 1
    stack: dict[str, Any] = _shared["stack"]
    return stack


def release() -> None:
    if not _shared:
        return
    _shared["users"] -= 1
    if _shared["users"] <= 0:
        local_stack.stop(_shared["home"])
        _shared.clear()
