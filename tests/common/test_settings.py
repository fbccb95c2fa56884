"""Settings: every ROOMTRUST_ variable is known or refused by name, bad values name their variable,
and `roomtrust serve dm` ends on bad settings with exit code 2 and one line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from services.common.settings import (
    TOOL_VARIABLES,
    Settings,
    SettingsError,
    known_variables,
    unknown_variables,
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("ROOMTRUST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ROOMTRUST_SETTINGS_FILE", str(tmp_path / "absent.yaml"))


def test_an_unknown_variable_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOMTRUST_DATABSE_URL", "postgresql://x")
    with pytest.raises(SettingsError, match=r"unknown setting\(s\): ROOMTRUST_DATABSE_URL "):
        Settings()


def test_every_field_and_every_tool_variable_is_known(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "ROOMTRUST_PUBLIC_HOSTS" in known_variables()
    environ = dict.fromkeys([*known_variables(), *TOOL_VARIABLES, "PATH", "OTHER"], "1")
    assert unknown_variables(environ) == []
    for name in TOOL_VARIABLES:
        monkeypatch.setenv(name, "1")
    Settings()


def test_an_unknown_key_of_the_settings_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("host: 0.0.0.0\npublic_host: dm.example\n")
    monkeypatch.setenv("ROOMTRUST_SETTINGS_FILE", str(path))
    with pytest.raises(SettingsError, match="unknown setting 'public_host' \\(settings file\\)"):
        Settings()
    path.write_text("host: 0.0.0.0\npublic_hosts: [dm.example]\n")
    assert Settings().public_hosts == ["dm.example"]


def test_values_are_checked_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOMTRUST_PUBLIC_HOSTS", "eu.dm.example, dm-eu.azurecontainerapps.io")
    assert Settings().public_hosts == ["eu.dm.example", "dm-eu.azurecontainerapps.io"]
    monkeypatch.setenv("ROOMTRUST_PORT", "70000")
    with pytest.raises(SettingsError, match=r"ROOMTRUST_PORT: .*65535 \(got '70000'\)"):
        Settings()
    monkeypatch.delenv("ROOMTRUST_PORT")
    monkeypatch.setenv("ROOMTRUST_CA_KEY_FILE", "/run/secrets/roomtrust/region-ca-key")
    with pytest.raises(SettingsError, match="ca_cert_file and ca_key_file: set both"):
        Settings()
    monkeypatch.delenv("ROOMTRUST_CA_KEY_FILE")
    monkeypatch.setenv("ROOMTRUST_BLOB_STORE", "azure")
    with pytest.raises(SettingsError, match="needs blob_account_url or blob_connection_string"):
        Settings()
    monkeypatch.setenv("ROOMTRUST_BLOB_STORE", "s3")
    with pytest.raises(SettingsError, match="blob_store 's3' needs blob_bucket"):
        Settings()
    monkeypatch.setenv("ROOMTRUST_BLOB_STORE", "gcs")
    with pytest.raises(
        SettingsError, match=r"ROOMTRUST_BLOB_STORE: .*'directory', 'azure' or 's3'"
    ):
        Settings()


def serve(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "roomtrust", "serve", "dm", "--region", "eu", *args]
    base = {"PATH": str(Path(sys.executable).parent), "ROOMTRUST_HOME": str(tmp_path / "home")}
    return subprocess.run(
        command, env={**base, **env}, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ROOMTRUST_REGION": "us"}, "ROOMTRUST_REGION is 'us' but --region is 'eu'"),
        ({"ROOMTRUST_PUBLIC_HOST": "dm.example"}, "unknown setting(s): ROOMTRUST_PUBLIC_HOST "),
        ({"ROOMTRUST_PORT": "http"}, "ROOMTRUST_PORT: Input should be a valid integer"),
        (
            {
                "ROOMTRUST_CA_CERT_FILE": "/nonexistent/ca",
                "ROOMTRUST_CA_KEY_FILE": "/nonexistent/k",
            },
            "ROOMTRUST_CA_CERT_FILE /nonexistent/ca: No such file or directory",
        ),
        (
            {"ROOMTRUST_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"},
            "the database cannot be used: connection failed",
        ),
    ],
)
def test_serve_refuses_bad_settings_in_one_line(
    env: dict[str, str], message: str, tmp_path: Path
) -> None:
    result = serve(env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("roomtrust serve dm: ")


def test_a_release_key_that_is_not_one_is_refused(tmp_path: Path) -> None:
    from services.common.ca import RegionCA, key_pem

    ca = RegionCA.create("dm-eu")
    (tmp_path / "ca").write_bytes(ca.cert_pem)
    (tmp_path / "ca.key").write_bytes(key_pem(ca.key))
    env = {
        "ROOMTRUST_CA_CERT_FILE": str(tmp_path / "ca"),
        "ROOMTRUST_CA_KEY_FILE": str(tmp_path / "ca.key"),
        "ROOMTRUST_RELEASE_KEY_FILE": str(tmp_path / "ca.key"),  # the CA's key, not Ed25519
    }
    result = serve(env, tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "ROOMTRUST_RELEASE_KEY_FILE" in result.stderr and "Ed25519" in result.stderr
