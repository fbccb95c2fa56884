"""Which scenarios a target runs, decided from their tags alone.

`local` runs `@live` scenarios; `url` (a deployed region) runs the `@live` scenarios that are also
tagged `@url`, meaning they need no server-side clock, process or store access; `graph` runs
`@graph` and `sim` runs `@sim`. `--tags` narrows the run further with a pytest `-m` expression over
the same tags (`"DM-04 or MT-06"`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from _pytest.mark.expression import Expression

TARGET_KINDS = ("local", "url", "graph", "sim")
RUN, NOT_APPLICABLE, EXCLUDED = "run", "not applicable", "excluded"
_REQUIRED_TAG = {"local": "live", "url": "live", "graph": "graph", "sim": "sim"}
_EVIDENCE_KIND = {
    "live": "a live stack",
    "graph": "an infrastructure graph",
    "sim": "simulation results",
}
URL_SAFE_TAG = "url"


class _TagMatcher:
    def __init__(self, tags: set[str]) -> None:
        self.tags = tags

    def __call__(self, name: str, /, **kwargs: str | int | bool | None) -> bool:
        return name in self.tags


@dataclass(frozen=True)
class Decision:
    status: str  # RUN, NOT_APPLICABLE or EXCLUDED
    reason: str = ""


def compile_tags(expression: str | None) -> Expression | None:
    """Parse a `--tags` expression; raises ValueError naming the problem."""
    if not expression:
        return None
    try:
        return Expression.compile(expression)
    except Exception as exc:  # pytest raises its own ParseError type
        raise ValueError(f"--tags: {exc}") from exc


def decide(tags: Iterable[str], kind: str, tags_expr: str | None = None) -> Decision:
    """Whether a scenario with these tags runs against a target of this kind, and if not, why."""
    if kind not in TARGET_KINDS:
        raise ValueError(f"unknown target kind {kind!r}; use one of {', '.join(TARGET_KINDS)}")
    tags = set(tags)
    needed = _REQUIRED_TAG[kind]
    if needed not in tags:
        declared = [_EVIDENCE_KIND[t] for t in ("live", "graph", "sim") if t in tags]
        checks = (
            " or ".join(declared) if declared else "no target (it has no @live/@graph/@sim tag)"
        )
        return Decision(
            NOT_APPLICABLE, f"the scenario checks {checks}; the {kind} target has no such evidence"
        )
    if kind == "url" and URL_SAFE_TAG not in tags:
        return Decision(
            NOT_APPLICABLE,
            "the scenario needs server-side clock, process or store control, which a deployed "
            "region does not give (it is not tagged @url)",
        )
    expression = compile_tags(tags_expr)
    if expression is not None and not expression.evaluate(_TagMatcher(tags)):
        return Decision(EXCLUDED, f"left out of this run by --tags {tags_expr!r}")
    return Decision(RUN)
