"""`roomtrust serve meeting|relay|pstn|interop --region R`: each reads the ROOMTRUST_* settings,
refuses unknown or bad ones (and a region other than --region) in one line with exit code 2, and
starts on the settings it is given: listen host, ports, the region CA and token secret files."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.common.ca import RegionCA, cert_pem, key_pem

SERVICES = ("meeting", "relay", "pstn", "interop")


def serve(
    service: str, env: dict[str, str], tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "roomtrust", "serve", service, "--region", "na", *args]
    base = {"PATH": str(Path(sys.executable).parent), "ROOMTRUST_HOME": str(tmp_path / "home")}
    return subprocess.run(
        command, env={**base, **env}, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ROOMTRUST_REGION": "eu"}, "ROOMTRUST_REGION is 'eu' but --region is 'na'"),
        ({"ROOMTRUST_MEDIA_PORTS": "10000"}, "unknown setting(s): ROOMTRUST_MEDIA_PORTS "),
        (
            {"ROOMTRUST_RELAY_TOKEN_FILE": "/nonexistent/relay-token"},
            "ROOMTRUST_RELAY_TOKEN_FILE /nonexistent/relay-token: No such file or directory",
        ),
        (
            {
                "ROOMTRUST_CA_CERT_FILE": "/nonexistent/ca",
                "ROOMTRUST_CA_KEY_FILE": "/nonexistent/k",
            },
            "ROOMTRUST_CA_CERT_FILE /nonexistent/ca: No such file or directory",
        ),
    ],
)
def test_serve_refuses_bad_settings_in_one_line(
    service: str, env: dict[str, str], message: str, tmp_path: Path
) -> None:
    result = serve(service, env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"roomtrust serve {service}: ")


def test_an_unknown_region_is_refused_before_anything_starts(tmp_path: Path) -> None:
    result = serve("relay", {}, tmp_path, "--region", "mars")
    assert result.returncode == 2 and "meeting regions are" in result.stderr


@pytest.mark.parametrize(
    ("service", "ready", "env"),
    [
        ("relay", "relays/r1/ready.json", {"ROOMTRUST_MEDIA_HOST": "media.example"}),
        ("pstn", "pstn/ready.json", {}),
        ("interop", "interop/ready.json", {}),
    ],
)
def test_a_side_process_starts_on_the_mounted_ca_and_tokens(
    service: str, ready: str, env: dict[str, str], tmp_path: Path
) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    ca = RegionCA.create("meeting-na")
    (secrets_dir / "ca.pem").write_bytes(cert_pem(ca.cert))
    (secrets_dir / "ca.key").write_bytes(key_pem(ca.key))
    for token in ("relay", "pstn", "interop"):
        (secrets_dir / token).write_text(f"{token}-token-from-the-vault\n")
    env = {
        **env,
        "ROOMTRUST_HOST": "127.0.0.1",
        "ROOMTRUST_ADVERTISE_HOST": "127.0.0.1",
        "ROOMTRUST_CA_CERT_FILE": str(secrets_dir / "ca.pem"),
        "ROOMTRUST_CA_KEY_FILE": str(secrets_dir / "ca.key"),
        "ROOMTRUST_RELAY_TOKEN_FILE": str(secrets_dir / "relay"),
        "ROOMTRUST_PSTN_TOKEN_FILE": str(secrets_dir / "pstn"),
        "ROOMTRUST_INTEROP_TOKEN_FILE": str(secrets_dir / "interop"),
    }
    home = tmp_path / "home"
    base = {"PATH": str(Path(sys.executable).parent), "ROOMTRUST_HOME": str(home)}
    command = [sys.executable, "-m", "roomtrust", "serve", service, "--region", "na"]
    command += ["--name", "r1"] if service == "relay" else []
    process = subprocess.Popen(
        command, env={**base, **env}, cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    path = home / "meeting" / "na" / ready
    try:
        deadline = time.monotonic() + 60
        while not path.exists():
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, f"{service} wrote no {ready}"
            time.sleep(0.1)
        info = json.loads(path.read_text())
    finally:
        process.terminate()
        process.wait(timeout=15)
    assert info["ca_file"] == str(secrets_dir / "ca.pem")
    if service == "relay":
        assert info["media_host"] == "media.example"
        assert info["control_url"].startswith("https://127.0.0.1:")
    # the tokens were read from the secrets, never made under the state directory
    assert not list((home / "meeting" / "na").glob("*.token"))
    assert not (home / "meeting" / "na" / "ca").exists()
