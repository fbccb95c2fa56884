"""Evidence of one scenario: a folder of files the report links to, what the scenario shows in the
report itself (`show`: a label and a few figures, kept in `shown.json`), and the rule that a step
which selects things (endpoints, resources, packets, rows) fails when it selected nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
SHOWN_FILE = "shown.json"


class EmptySelection(AssertionError):
    """A step selected nothing to check, so it cannot vouch for anything."""


def nonempty(items: Sequence[T], what: str) -> Sequence[T]:
    """`items`, or an EmptySelection naming what was looked for."""
    if not items:
        raise EmptySelection(f"selected no {what}: nothing to check")
    return items


def slug(nodeid: str, limit: int = 120) -> str:
    """A folder name for a test node id (`features/test_tls.py::test_x[a-b]` -> `test_tls-test_x-a-b`)."""
    path, _, name = nodeid.partition("::")
    stem = Path(path).stem
    text = re.sub(r"[^A-Za-z0-9_.]+", "-", f"{stem}-{name}").strip("-")
    return text[:limit]


class Evidence:
    """The evidence folder of one scenario run."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, name: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory / name

    def write_json(self, name: str, data: Any) -> Path:
        path = self.path(name)
        path.write_text(json.dumps(data, indent=2, default=str))
        return path

    def write_text(self, name: str, text: str) -> Path:
        path = self.path(name)
        path.write_text(text)
        return path

    def show(self, label: str, figures: dict[str, Any]) -> None:
        """Put `figures` under `label` in the report itself, next to the scenario's verdict (a
        scenario that must show something fails its claim when it did not: comply.shown)."""
        path = self.path(SHOWN_FILE)
        shown = json.loads(path.read_text()) if path.exists() else []
        shown.append({"label": label, "figures": figures})
        path.write_text(json.dumps(shown, indent=2, default=str))

    def shown(self) -> list[dict[str, Any]]:
        path = self.directory / SHOWN_FILE
        if not path.exists():
            return []
        shown: list[dict[str, Any]] = json.loads(path.read_text())
        return shown

    def files(self) -> list[Path]:
        if not self.directory.exists():
            return []
        return sorted(p for p in self.directory.rglob("*") if p.is_file())
