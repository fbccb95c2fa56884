"""The layer contracts of pyproject.toml ([tool.importlinter]) hold, and each one can fail.

The project's packages are copied into a temporary directory; `lint-imports` runs there, once on
the copy as it is (the contract is kept) and once after a forbidden import was added to one module
(the contract is broken, and the report names it and the import). Every contract has such a
negative control.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACTS = {c["id"]: c["name"] for c in CONFIG["contracts"]}
# lint-imports puts the working directory first on sys.path; the project's own root (on the path
# through the editable install) goes, so that only the copy is analysed
LINT = (
    "import sys; root = sys.argv.pop(1); sys.path[:] = [p for p in sys.path if p != root]; "
    "from importlinter.cli import lint_imports_command; lint_imports_command()"
)


@dataclass(frozen=True)
class Break:
    """A forbidden import added at the end of one module."""

    module: str  # path of the module in the project
    line: str  # the import statement
    chain: str  # how lint-imports reports it

    def apply(self, root: Path) -> None:
        path = root / self.module
        path.write_text(path.read_text() + f"\n{self.line}\n")


BREAKS = {
    "protocol-leaf": Break(
        "protocol/stack.py",
        "import services.common.settings",
        "protocol.stack -> services.common.settings",
    ),
    "media-core-leaf": Break(
        "media_core/rtp.py", "import protocol.stack", "media_core.rtp -> protocol.stack"
    ),
    "product-below-tools": Break(
        "services/meeting/domain/lobby.py", "import roomtrust", "services.meeting.domain.lobby"
    ),
    "services-below-drivers": Break(
        "services/dm/domain/rollout_planner.py",
        "import devices_virtual.models",
        "services.dm.domain.rollout_planner -> devices_virtual.models",
    ),
    "devices-virtual-server-side": Break(
        "devices_virtual/models.py",
        "import services.meeting.domain.lobby",
        "devices_virtual.models -> services.meeting.domain.lobby",
    ),
    "domain-without-web": Break(
        "services/dm/domain/rollout_planner.py",
        "import fastapi",
        "services.dm.domain.rollout_planner -> fastapi",
    ),
    "infra-programs-only": Break(
        "infra/policy/checks.py",
        "import services.common.settings",
        "infra.policy.checks -> services.common.settings",
    ),
    "reports-below-comply": Break(
        "reports/compliance/build.py",
        "import roomtrust.comply.verdicts",
        "reports.compliance.build -> roomtrust.comply.verdicts",
    ),
    "features-harness-and-checks": Break(
        "features/steps/sim_steps.py",
        "import roomtrust.stack.launcher",
        "features.steps.sim_steps -> roomtrust.stack.launcher",
    ),
    "tests-not-features": Break(
        "tests/media_core/test_media_rtp.py",
        "import features.steps.sim_steps",
        "tests.media_core.test_media_rtp -> features.steps.sim_steps",
    ),
}


def copy_project(target: Path) -> Path:
    """pyproject.toml and the Python files of every root package of the contracts."""
    target.mkdir()
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    for package in CONFIG["root_packages"]:
        for source in (ROOT / package).rglob("*.py"):
            if "__pycache__" in source.parts:
                continue
            destination = target / source.relative_to(ROOT)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
    return target


def lint(root: Path, contract: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "400"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [sys.executable, "-c", LINT, str(ROOT), "--no-cache", "--contract", contract],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield copy_project(tmp_path_factory.mktemp("layers") / "project")


def test_every_contract_has_a_negative_control() -> None:
    assert set(BREAKS) == set(CONTRACTS)


@pytest.mark.parametrize("contract", list(CONTRACTS))
def test_the_project_as_it_is_keeps_the_contract(pristine: Path, contract: str) -> None:
    result = lint(pristine, contract)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{CONTRACTS[contract]} KEPT" in result.stdout


@pytest.mark.parametrize("contract", list(CONTRACTS))
def test_a_forbidden_import_breaks_the_contract(
    pristine: Path, tmp_path: Path, contract: str
) -> None:
    broken = tmp_path / "project"
    shutil.copytree(pristine, broken)
    BREAKS[contract].apply(broken)
    result = lint(broken, contract)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{CONTRACTS[contract]} BROKEN" in result.stdout
    assert BREAKS[contract].chain in result.stdout
