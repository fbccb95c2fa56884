"""The wire contracts are written once, in `protocol/`: no other source file spells a message type,
a close code, a DM-09 field list or a region list as a literal.

The scan walks every `*.py` of the project with `ast`, except `protocol/` (where the contracts
live), `tests/` (tests are the independent oracle: they spell the wire out on purpose, so a changed
constant cannot pass unnoticed) and the virtual environment. To keep common words ("join", "end",
"error", "media") from raising false alarms, a string is flagged only where it is used as a
message type:

- signaling and DM channel message types (`protocol.signaling.MessageType`,
  `protocol.dm_channel.ChannelMessageType`): a string equal to a type value that is
  (a) the value under the key `"type"` in a dict display, (b) compared (`==`, `!=`, `in`, `not in`,
  also inside a tuple/list/set compared with `in`) with an expression that names a type or kind
  (a name or attribute `type`, `kind`, `*_type`, `*_kind`, a subscript `[...]["type"]` or
  `["kind"]`, a call `.get("type")` or `.get("kind")`), (c) a `case` value of a `match` on such an
  expression, or (d) an element of a tuple/list/set literal of two or more strings that are all
  type values;
- close codes (`protocol.dm_channel.CloseCode`, `protocol.signaling.SignalingClose` codes from
  4000): an int literal that is an argument of a call whose name contains "close", a `code=`
  keyword argument, compared with an expression whose name contains "code" or with a call, or
  assigned (also as a branch of `x if c else y`) to a name that contains "code" or "close";
- field lists (`protocol.fields`): a tuple/list/set literal of three or more strings, all of them
  in one of the DM-09 lists;
- region lists (`protocol.regions`): a tuple/list/set literal whose strings are exactly one
  service's regions.

`INDEPENDENT` names the few files that keep their own copy on purpose, each with its reason.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol import dm_channel, fields, regions, signaling

ROOT = Path(__file__).resolve().parents[2]
EXCLUDED = {".venv", "protocol", "tests", ".git", ".roomtrust", "node_modules"}
INDEPENDENT = {
    # The policy pack checks every deployed region against the claims' own region sets; it does
    # not trust the code it checks (see its docstring), so it keeps its own table.
    "infra/policy/geography.py": "region lists",
}

TYPE_VALUES = frozenset(t.value for t in signaling.MessageType) | frozenset(
    t.value for t in dm_channel.ChannelMessageType
)
CLOSE_CODES = frozenset(int(c) for c in dm_channel.CloseCode) | frozenset(
    int(c) for c in signaling.SignalingClose if c >= 4000
)
FIELD_LISTS = [
    frozenset(fields.TELEMETRY_FIELDS),
    frozenset(fields.DIAGNOSTICS_UPLOAD_FIELDS),
    frozenset(fields.DIAGNOSTICS_BUNDLE_FIELDS),
    frozenset(fields.ACCOUNT_FIELDS),
    frozenset(fields.DEVICE_STATUSES),
    frozenset(fields.NETWORK_TYPES),
]
REGION_SETS = [frozenset(regions.DM_REGIONS), frozenset(regions.MEETING_REGIONS)]


def source_files() -> Iterator[Path]:
    for directory, subdirectories, files in os.walk(ROOT):
        if Path(directory) == ROOT:
            subdirectories[:] = [d for d in subdirectories if d not in EXCLUDED]
        subdirectories[:] = [d for d in subdirectories if d not in (".venv", ".git")]
        subdirectories.sort()
        yield from (Path(directory) / f for f in sorted(files) if f.endswith(".py"))


# -- what names a type or a kind -----------------------------------------------------------------


def _typeish_name(name: str) -> bool:
    name = name.lower()
    return name in ("type", "kind") or name.endswith(("_type", "_kind"))


def names_a_type(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return _typeish_name(node.id)
    if isinstance(node, ast.Attribute):
        return _typeish_name(node.attr)
    if isinstance(node, ast.Subscript):
        key = node.slice
        return isinstance(key, ast.Constant) and key.value in ("type", "kind")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        first = node.args[0] if node.args else None
        return (
            node.func.attr == "get"
            and isinstance(first, ast.Constant)
            and first.value in ("type", "kind")
        )
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
        return node.func.id in ("str", "MessageType") and names_a_type(node.args[0])
    return False


def names_a_code(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return "code" in node.id.lower()
    if isinstance(node, ast.Attribute):
        return "code" in node.attr.lower()
    return isinstance(node, ast.Call | ast.Await)


def _strings(node: ast.expr) -> list[str] | None:
    """The strings of a tuple/list/set literal (or of `frozenset({...})`), None for others."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and len(node.args) == 1
        and node.func.id in ("frozenset", "set", "tuple", "list")
    ):
        return _strings(node.args[0])
    if not isinstance(node, ast.Tuple | ast.List | ast.Set):
        return None
    values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
    if len(values) != len(node.elts) or not all(isinstance(v, str) for v in values):
        return None
    return [str(v) for v in values]


def _type_constants(node: ast.expr) -> list[ast.Constant]:
    """String constants equal to a type value: the node itself, or the elements of a literal."""
    if isinstance(node, ast.Constant) and node.value in TYPE_VALUES:
        return [node]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [e for e in node.elts if isinstance(e, ast.Constant) and e.value in TYPE_VALUES]
    return []


# -- the scans -----------------------------------------------------------------------------------


def message_type_literals(tree: ast.AST) -> Iterator[tuple[int, str]]:
    seen: set[int] = set()

    def hit(node: ast.Constant, why: str) -> Iterator[tuple[int, str]]:
        if id(node) not in seen:
            seen.add(id(node))
            yield node.lineno, f"message type {node.value!r} {why}"

    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "type":
                    for c in _type_constants(value) if isinstance(value, ast.Constant) else []:
                        yield from hit(c, 'as a "type" value')
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(names_a_type(o) for o in operands):
                for operand in operands:
                    for c in _type_constants(operand):
                        yield from hit(c, "compared with a type or kind")
        elif isinstance(node, ast.Match) and names_a_type(node.subject):
            for case in node.cases:
                for sub in ast.walk(case.pattern):
                    if isinstance(sub, ast.MatchValue):
                        for c in _type_constants(sub.value):
                            yield from hit(c, "as a case of a match on a type or kind")
        elif isinstance(node, ast.Tuple | ast.List | ast.Set):
            strings = _strings(node)
            if strings and len(strings) >= 2 and set(strings) <= TYPE_VALUES:
                for c in _type_constants(node):
                    yield from hit(c, "in a collection of message types")


def close_code_literals(tree: ast.AST) -> Iterator[tuple[int, str]]:
    def codes(node: ast.expr | None) -> bool:
        return (
            isinstance(node, ast.Constant)
            and node.value in CLOSE_CODES
            and (type(node.value) is int)
        )

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if "close" in name.lower():
                for arg in node.args:
                    if codes(arg):
                        yield arg.lineno, f"close code {arg.value} in a call of {name}"  # type: ignore[attr-defined]
            for kw in node.keywords:
                if kw.arg == "code" and codes(kw.value):
                    yield kw.value.lineno, f"close code {kw.value.value} as code="  # type: ignore[attr-defined]
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(names_a_code(o) for o in operands):
                for o in operands:
                    if codes(o):
                        yield o.lineno, f"close code {o.value} compared with a code"  # type: ignore[attr-defined]
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            named = [t.id for t in targets if isinstance(t, ast.Name)]
            values = [node.value]
            if isinstance(node.value, ast.IfExp):  # code = 4401 if ... else 4403
                values = [node.value.body, node.value.orelse]
            if any("code" in n.lower() or "close" in n.lower() for n in named):
                for value in values:
                    if codes(value):
                        yield value.lineno, f"close code {value.value} assigned to {named[0]}"  # type: ignore[attr-defined]


def field_list_literals(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.expr):
            continue
        strings = _strings(node)
        if strings and len(strings) >= 3 and any(set(strings) <= known for known in FIELD_LISTS):
            yield node.lineno, f"a copy of a DM-09 list: {sorted(strings)}"


def region_list_literals(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.expr):
            continue
        strings = _strings(node)
        if strings and set(strings) in REGION_SETS:
            yield node.lineno, f"a copy of a region list: {strings}"


SCANS = {
    "message types": message_type_literals,
    "close codes": close_code_literals,
    "DM-09 field lists": field_list_literals,
    "region lists": region_list_literals,
}


def findings(scan: str) -> list[str]:
    out = []
    for path in source_files():
        tree = ast.parse(path.read_text(), str(path))
        if INDEPENDENT.get(path.relative_to(ROOT).as_posix()) == scan:
            continue
        for line, what in SCANS[scan](tree):
            out.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    return sorted(set(out))


@pytest.mark.parametrize("scan", SCANS)
def test_no_wire_literal_outside_protocol(scan: str) -> None:
    found = findings(scan)
    assert not found, f"{len(found)} {scan} spelled outside protocol/:\n" + "\n".join(found)


# -- the scans themselves: what they flag and what they leave alone ------------------------------

OFFENDING = {
    "message types": [
        'send({"type": "admitted", "conference_id": c})',
        'if kind == "lobby.waiting": pass',
        'if message.get("type") in ("error", "rejected"): pass',
        'if message["type"] != "ack": pass',
        'match message.get("type"):\n    case "roster": pass',
        'TERMINAL = {"removed", "conference.ended"}',
        'if event.kind == "admitted": pass',
    ],
    "close codes": [
        "await socket.close(code=4003, reason=r)",
        "await ws.close(4401)",
        "REVOKED_CHANNEL_CODE = 4003",
        "code = 4401 if refused else 4403",
        "CLOSE_REMOVED = 4000",
        "if code == 4003: pass",
        "assert await sock.closed() == 4403",
        'Close(pid, 4403, "rejected")',
    ],
    "DM-09 field lists": [
        'ALLOWED = ("device_name", "mac", "serial_number")',
        'DIAGNOSIS = frozenset({"device_id", "mac", "ip_address", "logs", "collected_at"})',
        'STATUSES = ["online", "idle", "fault"]',
    ],
    "region lists": [
        'REGIONS = ("na", "sa", "eu", "asia")',
        'for r in ["us", "eu", "au"]: pass',
    ],
}
HARMLESS = [
    'notice = {"kind": "chat", "text": "end"}',
    'if purpose == "join": pass',
    'if action in ("start", "stop"): pass',
    'if command.kind == "firmware": pass',
    'OPTIONS = ("join", "leave", "admin")',
    'body = {"type": "vmr"}',
    "server = bind(port=4003)",
    "x = 4000 + status",
    "timeout_code = 1000",
    'fields = ("mac", "status")',
    'report = {"device_name": n, "mac": m, "serial_number": s}',
    'regions = ("eu", "na")',
]


@pytest.mark.parametrize(
    ("scan", "snippet"), [(scan, s) for scan, snippets in OFFENDING.items() for s in snippets]
)
def test_the_scan_flags_a_wire_literal(scan: str, snippet: str) -> None:
    assert list(SCANS[scan](ast.parse(snippet))), snippet


@pytest.mark.parametrize("snippet", HARMLESS)
def test_the_scan_leaves_ordinary_strings_and_numbers_alone(snippet: str) -> None:
    tree = ast.parse(snippet)
    assert [hit for scan in SCANS.values() for hit in scan(tree)] == []


def test_protocol_imports_nothing_else_of_the_project() -> None:
    """The contracts are a leaf: services, devices, load and sim all import them."""
    project = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    project |= {p.stem for p in ROOT.glob("*.py")}
    wrong = []
    for path in sorted((ROOT / "protocol").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            top = {m.split(".")[0] for m in modules}
            wrong += [f"{path.name}: {m}" for m in top & (project - {"protocol"})]
    assert not wrong, wrong
    assert "services" in project  # the control: the project's packages were found
