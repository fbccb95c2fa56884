"""The DM container contract: the service started exactly as the Pulumi program's container spec
says (command, args, env, port, probes, volumes), read from the stack's mock graph.

What the cloud gives the container, this machine stands in for (roomtrust/container_host.py):
- the container gets a network namespace of its own; probes and the test reach it on its 10.x
  address, never on loopback;
- the root filesystem is read-only: the service sees this machine's root read-only, with the spec's
  volumes mounted at their paths (an EmptyDir volume is a temp dir, writable);
- a Key Vault secret volume is a read-only temp dir of files named as the volume says, holding a
  region CA and a release key made for the test.

Three values are translated, and only these: the database URL keeps its scheme and driver and points
at a fresh database of the local PostgreSQL (through the namespace's gateway; the local server has
no TLS, so `sslmode` goes); the storage account's URL (signed in to by managed identity, which does
not exist here) becomes a connection string of Azurite on the gateway. Every other variable is passed
as the program sets it, and nothing else is passed but PATH (the image's).

Checks: the service starts; every probe answers 200 on the namespace's address; the server
certificate verifies under each public host name the program names; everything it wrote is in the
writable volume. Negative controls: the same run with a variable of the program removed or renamed,
or without the writable volume, must break the contract.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from infra.dm.region import DATABASE_NAME
from roomtrust.container_host import (
    POSTGRES,
    Mount,
    NetnsHost,
    TcpForwarder,
    fresh_database,
    host_missing,
    postgres_missing,
    readonly_root_argv,
    write_region_secrets,
)
from roomtrust.emulators import azurite, azurite_missing

Graphs = dict[str, dict[str, Any]]
APP = "azure-native:app:ContainerApp"
STACKS = ("prod-dm-eu", "staging-dm-us")
START_TIMEOUT = 60.0
IMAGE_PATH = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"

pytestmark = pytest.mark.skipif(
    bool(host_missing() or postgres_missing() or azurite_missing()),
    reason=str(host_missing() or postgres_missing() or azurite_missing()),
)


class ContractBroken(AssertionError):
    """The service, started as the spec says, does not keep the contract."""


@dataclass(frozen=True)
class Probe:
    kind: str
    path: str
    port: int
    scheme: str


@dataclass(frozen=True)
class ContainerSpec:
    """One container of the program's container app, as the graph holds it."""

    region: str
    command: list[str]
    args: list[str]
    env: dict[str, str]
    probes: list[Probe]
    mounts: dict[str, str]  # volume name -> mount path
    volumes: dict[str, dict[str, Any]]  # volume name -> its definition
    target_port: int

    @property
    def argv(self) -> list[str]:
        return self.command + self.args


def container_spec(graph: dict[str, Any]) -> ContainerSpec:
    [app] = [r for r in graph["resources"] if r["type"] == APP]
    inputs = app["inputs"]
    [container] = inputs["template"]["containers"]
    env = {}
    for item in container.get("env") or []:
        assert "value" in item, f"{item['name']}: only plain values are translated here"
        env[item["name"]] = str(item["value"])
    return ContainerSpec(
        region=graph["config"]["region"],
        command=list(container["command"]),
        args=list(container.get("args") or []),
        env=env,
        probes=[
            Probe(p["type"], p["httpGet"]["path"], p["httpGet"]["port"], p["httpGet"]["scheme"])
            for p in container.get("probes") or []
        ],
        mounts={m["volumeName"]: m["mountPath"] for m in container.get("volumeMounts") or []},
        volumes={v["name"]: v for v in inputs["template"].get("volumes") or []},
        target_port=inputs["configuration"]["ingress"]["targetPort"],
    )


def translate_database_url(url: str, gateway: str, port: int, database: str) -> str:
    parts = urlsplit(url)
    assert parts.scheme == "postgresql+psycopg", f"database URL scheme {parts.scheme!r}"
    assert parts.hostname and parts.hostname.endswith(".postgres.database.azure.com"), url
    assert parts.path == f"/{DATABASE_NAME}", f"the program provisions {DATABASE_NAME!r}: {url}"
    return f"{parts.scheme}://root@{gateway}:{port}/{database}"


def _volumes(spec: ContainerSpec, tmp: Path) -> tuple[list[Mount], Path | None, Path]:
    """The spec's volumes as mounts: EmptyDir -> a writable temp dir; Secret -> a read-only temp
    dir of the secrets' files. Returns the mounts, the writable volume and the CA the secrets hold."""
    region_secrets = write_region_secrets(tmp / "key-vault", f"dm-{spec.region}")
    mounts, writable = [], None
    for volume, path in spec.mounts.items():
        definition = spec.volumes[volume]
        directory = tmp / f"volume-{volume}"
        directory.mkdir()
        kind = definition.get("storageType")
        if kind == "EmptyDir":
            mounts.append(Mount(directory, path, writable=True))
            writable = directory
        elif kind == "Secret":
            for item in definition["secrets"]:
                shutil.copy(region_secrets.files[item["secretRef"]], directory / item["path"])
            mounts.append(Mount(directory, path, writable=False))
        else:
            raise ContractBroken(f"volume {volume}: storage type {kind!r} is not translated")
    return mounts, writable, region_secrets.files["region-ca-cert"]


def _tls(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


def _probe(client: httpx.Client, address: str, probe: Probe) -> int:
    url = f"{probe.scheme.lower()}://{address}:{probe.port}{probe.path}"
    return client.get(url).status_code


def _probe_tls(ca_file: Path) -> ssl.SSLContext:
    """A probe checks the chain (the region CA from Key Vault), not the name: it dials an address.
    The names are checked apart (`_certificate_names`)."""
    ctx = _tls(ca_file)
    ctx.check_hostname = False
    return ctx


def _certificate_names(address: str, port: int, ca_file: Path, names: list[str]) -> None:
    """The server certificate verifies under each name, and under no other."""
    for name in [*names, "not-this-region.example"]:
        ctx = _tls(ca_file)
        try:
            with (
                socket.create_connection((address, port), timeout=5) as raw,
                ctx.wrap_socket(raw, server_hostname=name),
            ):
                verified = True
        except ssl.SSLCertVerificationError:
            verified = False
        if verified != (name in names):
            raise ContractBroken(
                f"the server certificate {'does not verify' if name in names else 'verifies'} "
                f"under {name!r}"
            )


def run_contract(spec: ContainerSpec, tmp: Path) -> dict[str, Any]:
    """Start the service as `spec` says and check the contract; raises ContractBroken."""
    import psycopg
    from azure.storage.blob import BlobServiceClient

    mounts, writable, ca_file = _volumes(spec, tmp)
    root = tmp / "root"
    root.mkdir()
    with (
        NetnsHost() as host,
        fresh_database() as database,
        TcpForwarder(host.gateway, POSTGRES) as postgres,
        azurite(host.gateway) as blob,
    ):
        env = {"PATH": IMAGE_PATH}
        for name, value in spec.env.items():
            if name == "ROOMTRUST_DATABASE_URL":
                value = translate_database_url(value, postgres.host, postgres.port, database)
            elif name == "ROOMTRUST_BLOB_ACCOUNT_URL":
                name, value = "ROOMTRUST_BLOB_CONNECTION_STRING", blob.connection_string
            env[name] = value
        argv = host.argv(readonly_root_argv(root, mounts, spec.argv))
        started = time.monotonic()
        process = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            evidence = _check_running(spec, host, process, ca_file, writable, started)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with psycopg.connect(f"postgresql://root@127.0.0.1:5432/{database}") as conn:
            tables = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN "
                "('pg_catalog', 'information_schema')"
            ).fetchone()
        if not tables or not tables[0]:
            raise ContractBroken("the service made no table in the database the program gave it")
        service = BlobServiceClient.from_connection_string(blob.connection_string)
        containers = sorted(c.name for c in service.list_containers())
        if containers != ["diagnostics", "firmware"]:
            raise ContractBroken(f"the storage account holds containers {containers}")
    assert writable is not None
    written = sorted(str(p.relative_to(writable)) for p in writable.rglob("*") if p.is_file())
    return {**evidence, "tables": tables[0], "containers": containers, "written": written}


def _check_running(
    spec: ContainerSpec,
    host: NetnsHost,
    process: subprocess.Popen[str],
    ca_file: Path,
    writable: Path | None,
    started: float,
) -> dict[str, Any]:
    [startup] = [p for p in spec.probes if p.kind == "Startup"] or spec.probes[:1]
    ready_file = writable / "dm" / spec.region / "ready.json" if writable else None
    ready_at = None
    with httpx.Client(verify=_probe_tls(ca_file), timeout=2) as client:
        while True:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                raise ContractBroken(f"the service exited ({process.returncode}): {output[-1500:]}")
            try:
                if _probe(client, host.address, startup) == 200:
                    break
            except httpx.TransportError:
                pass
            now = time.monotonic()
            if ready_at is None and ready_file is not None and ready_file.exists():
                ready_at = now
            if ready_at is not None and now - ready_at > 3:
                raise ContractBroken(
                    f"the service serves, but its {startup.kind} probe gets no answer on "
                    f"{host.address}:{startup.port}"
                )
            if now - started > START_TIMEOUT:
                raise ContractBroken(f"no answer to the {startup.kind} probe in {START_TIMEOUT} s")
            time.sleep(0.2)
        start_seconds = time.monotonic() - started
        statuses = {p.kind: _probe(client, host.address, p) for p in spec.probes}
    if any(status != 200 for status in statuses.values()):
        raise ContractBroken(f"probes answered {statuses}")
    if spec.target_port not in {p.port for p in spec.probes}:
        raise ContractBroken(f"no probe on the ingress target port {spec.target_port}")
    names = [n for n in spec.env.get("ROOMTRUST_PUBLIC_HOSTS", "").split(",") if n]
    if not names:
        raise ContractBroken("the program names no public host")
    _certificate_names(host.address, spec.target_port, ca_file, names)
    return {"start_seconds": round(start_seconds, 1), "probes": statuses, "names": names}


# -- the contract, as two stacks' programs say ------------------------------------------------------


@pytest.fixture(scope="module")
def specs(stack_graphs: Graphs) -> dict[str, ContainerSpec]:
    return {name: container_spec(stack_graphs[name]) for name in STACKS}


@pytest.mark.parametrize("stack", STACKS)
def test_the_service_keeps_the_container_contract_of_the_program(
    specs: dict[str, ContainerSpec], stack: str, tmp_path: Path
) -> None:
    spec = specs[stack]
    assert spec.command == ["roomtrust", "serve", "dm"]
    assert spec.args == ["--region", spec.region]
    evidence = run_contract(spec, tmp_path)
    assert set(evidence["probes"]) == {"Startup", "Liveness", "Readiness"}
    # the state it keeps is in the volume (the root is read-only: nothing else could be written)
    region = f"dm/{spec.region}"
    assert {f"{region}/server.pem", f"{region}/server.key", f"{region}/ready.json"} <= set(
        evidence["written"]
    ), evidence["written"]
    print(f"{stack}: {evidence}")


# -- negative controls: a program that breaks the contract fails it -------------------------------


def _without(name: str) -> Callable[[ContainerSpec], ContainerSpec]:
    def change(spec: ContainerSpec) -> ContainerSpec:
        assert name in spec.env, f"the program does not set {name}"
        return replace(spec, env={k: v for k, v in spec.env.items() if k != name})

    return change


def _renamed(name: str, new: str) -> Callable[[ContainerSpec], ContainerSpec]:
    def change(spec: ContainerSpec) -> ContainerSpec:
        assert name in spec.env, f"the program does not set {name}"
        return replace(spec, env={(new if k == name else k): v for k, v in spec.env.items()})

    return change


def _no_writable_volume(spec: ContainerSpec) -> ContainerSpec:
    kept = {
        v: p for v, p in spec.mounts.items() if spec.volumes[v].get("storageType") != "EmptyDir"
    }
    assert kept != spec.mounts
    return replace(spec, mounts=kept)


BROKEN_PROGRAMS: dict[str, tuple[Callable[[ContainerSpec], ContainerSpec], str]] = {
    "no ROOMTRUST_HOST": (_without("ROOMTRUST_HOST"), "probe gets no answer"),
    "ROOMTRUST_PUBLIC_HOSTS renamed": (
        _renamed("ROOMTRUST_PUBLIC_HOSTS", "ROOMTRUST_PUBLIC_HOST"),
        "unknown setting(s): ROOMTRUST_PUBLIC_HOST ",
    ),
    "no ROOMTRUST_DATABASE_URL": (_without("ROOMTRUST_DATABASE_URL"), "made no table"),
    "ROOMTRUST_CA_KEY_FILE renamed": (
        _renamed("ROOMTRUST_CA_KEY_FILE", "ROOMTRUST_CA_KEY_PATH"),
        "unknown setting(s): ROOMTRUST_CA_KEY_PATH ",
    ),
    "no ROOMTRUST_BLOB_STORE": (_without("ROOMTRUST_BLOB_STORE"), "holds containers []"),
    "no writable volume": (_no_writable_volume, "Read-only file system"),
}


@pytest.mark.parametrize("broken", list(BROKEN_PROGRAMS))
def test_a_program_that_breaks_the_contract_fails_it(
    specs: dict[str, ContainerSpec], broken: str, tmp_path: Path
) -> None:
    change, reason = BROKEN_PROGRAMS[broken]
    with pytest.raises(ContractBroken) as failure:
        run_contract(change(specs["prod-dm-eu"]), tmp_path)
    assert reason in str(failure.value)


def test_the_test_host_is_left_clean() -> None:
    """No namespace, veth pair or database of a run outlives it, even a failed one."""
    import psycopg

    with pytest.raises(RuntimeError), NetnsHost() as host, fresh_database() as database:
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert host.name in listed
        raise RuntimeError("the run fails")
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    with psycopg.connect("postgresql://root@127.0.0.1:5432/test") as conn:
        databases = [r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()]
    assert host.name not in namespaces
    assert host.name.replace("-", "") not in links  # the veth pair's names
    assert database not in databases
