"""Writes the compliance report folder: index.html, compliance.json, cucumber.json, junit.xml.

Evidence links are paths relative to the report folder, so the folder can be zipped and handed
to an auditor as it is. The verdicts come from `roomtrust comply` (`roomtrust.comply.verdicts`),
which calls this module; it imports nothing of roomtrust.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


class Verdict(Protocol):
    """A claim's verdict as the report shows it (index.html also reads its text, the targets
    that checked it, its scenarios, reasons and evidence)."""

    @property
    def id(self) -> str: ...

    @property
    def verdict(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


def build_report(
    out: Path, verdicts: Sequence[Verdict], tally: Mapping[str, int], meta: dict[str, Any]
) -> Path:
    """Write compliance.json and index.html into `out`; returns the path of index.html.
    `tally` is the number of claims per verdict, in the order the report lists them."""
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "meta": meta,
        "counts": dict(tally),
        "claims": [v.to_dict() for v in verdicts],
    }
    (out / "compliance.json").write_text(json.dumps(document, indent=2, default=str))
    links = [
        name
        for name in ("compliance.json", "cucumber.json", "junit.xml", *meta.get("logs", []))
        if (out / name).exists()
    ]
    html = (
        _environment()
        .get_template("index.html.j2")
        .render(verdicts=verdicts, counts=tally, meta=meta, links=links)
    )
    index = out / "index.html"
    index.write_text(html)
    return index


def merge_cucumber(parts: Iterable[Path], target: Path) -> Path:
    """One Cucumber JSON array from the per-target files (each is an array of features)."""
    features: list[Any] = []
    for part in parts:
        if part.exists() and part.stat().st_size:
            features.extend(json.loads(part.read_text()))
    target.write_text(json.dumps(features, indent=2))
    return target


def merge_junit(parts: Iterable[Path], target: Path) -> Path:
    """One <testsuites> document holding the <testsuite> of every per-target file."""
    root = ET.Element("testsuites")
    for part in parts:
        if not part.exists():
            continue
        tree = ET.parse(part).getroot()
        suites = [tree] if tree.tag == "testsuite" else list(tree)
        for suite in suites:
            suite.set("name", f"{suite.get('name', 'pytest')}[{part.stem.removeprefix('junit-')}]")
            root.append(suite)
    ET.ElementTree(root).write(target, encoding="utf-8", xml_declaration=True)
    return target
