"""The meeting container contract (issue 17, item 6): signaling, relay, PSTN and interop started
exactly as the `prod-meeting-na` program's ECS task definitions say (command, environment, volumes,
the secrets init container), read from the stack's mock graph, and probed as their target groups
probe them.

What ECS gives a task, this machine stands in for (roomtrust/container_host.py):
- the task gets a network namespace of its own (awsvpc); the probes reach it on its 10.x address,
  never on loopback;
- the root filesystem is read-only; each volume of the task definition (ephemeral task storage) is
  a temp dir mounted at the container's path, writable or read-only as its mount point says;
- the init container runs first, with each Secrets Manager secret it names as a variable (values
  made for the test: a region CA, service tokens, a recording key), and must succeed before the
  service container starts (`dependsOn: SUCCESS`).

Values translated, and only these: the database URL keeps its scheme and driver and points at a
fresh database of the local PostgreSQL (through the namespace's gateway; no TLS there, so `sslmode`
goes); the S3 bucket is reached at moto's server on the gateway (ROOMTRUST_BLOB_ENDPOINT_URL and
moto's credentials stand in for the task role); the bus URL (`nats://<the bus's Cloud Map
name>:4222`) keeps its scheme and points at a core NATS server of this machine (no JetStream, a port
it picks) through the namespace's gateway, as the Cloud Map name reaches the bus's tasks. Every other
variable is passed as the program sets it, and nothing else but PATH (the image's).

Checks: each service starts; each target group's health check (HTTPS path, or a TLS handshake for a
TCP check) answers on the namespace's address; what it wrote is in the writable volume; signaling
made its tables in the database it was given, and each signaling task joined the region's bus (the
NATS server lists the replica's client connection, `roomtrust-meeting-na`, made only in the
replicated mode), so
the tasks behind the ALB are one region and not one region each. The bus's own task definition
runs NATS without JetStream and nothing else persists. Negative controls: the same run with a
variable of the program removed or renamed (the bus URL among them: the task then runs as a
region of its own), or without the writable volume, breaks the contract; a program whose bus runs
JetStream is refused by the policy (IN-07).
"""

from __future__ import annotations

import base64
import json
import secrets
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

from infra.meeting.bus import BUS_HOST, CLIENT_PORT
from infra.meeting.region import DATABASE_NAME
from infra.policy import checks
from infra.policy.faults import FAULTS
from roomtrust.container_host import (
    POSTGRES,
    Mount,
    NetnsHost,
    TcpForwarder,
    fresh_database,
    host_missing,
    local_nats,
    nats_missing,
    postgres_missing,
    readonly_root_argv,
)
from roomtrust.emulators import MOTO_CREDENTIALS, moto_missing, moto_s3
from services.common.ca import RegionCA, cert_pem, key_pem

Graphs = dict[str, dict[str, Any]]
STACK = "prod-meeting-na"
ROLES = ("signaling", "relay", "pstn", "interop")
TASK = "aws:ecs/taskDefinition:TaskDefinition"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
START_TIMEOUT = 90.0
IMAGE_PATH = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"
# where each role writes its ready file under the state directory, once it serves
READY = {
    "signaling": "meeting/na/ready.json",
    "relay": "meeting/na/relays/*/ready.json",
    "pstn": "meeting/na/pstn/ready.json",
    "interop": "meeting/na/interop/ready.json",
}

_missing = host_missing() or postgres_missing() or moto_missing() or nats_missing()
pytestmark = pytest.mark.skipif(bool(_missing), reason=str(_missing))


class ContractBroken(AssertionError):
    """The service, started as the task definition says, does not keep the contract."""


@dataclass(frozen=True)
class Probe:
    protocol: str  # "HTTPS" or "TCP"
    port: int
    path: str | None


@dataclass(frozen=True)
class Container:
    command: list[str]
    env: dict[str, str]
    secrets: dict[str, str]  # variable -> Secrets Manager ARN
    mounts: dict[str, tuple[str, bool]]  # volume -> (path, read-only)


@dataclass(frozen=True)
class TaskSpec:
    """One role's task definition and target groups, as the graph holds them."""

    role: str
    service: Container
    init: Container | None
    volumes: list[str]
    probes: list[Probe]


def _container(definition: dict[str, Any]) -> Container:
    return Container(
        command=list(definition["command"]),
        env={e["name"]: str(e["value"]) for e in definition.get("environment") or []},
        secrets={s["name"]: s["valueFrom"] for s in definition.get("secrets") or []},
        mounts={
            m["sourceVolume"]: (m["containerPath"], bool(m.get("readOnly")))
            for m in definition.get("mountPoints") or []
        },
    )


def task_spec(graph: dict[str, Any], role: str) -> TaskSpec:
    resources = graph["resources"]
    [component] = [
        r
        for r in resources
        if r["type"] == "roomtrust:meeting:FargateService" and r["inputs"]["role"] == role
    ]
    [task] = [r for r in resources if r["type"] == TASK and r["parent"] == component["urn"]]
    definitions = json.loads(task["inputs"]["containerDefinitions"])
    [service] = [d for d in definitions if d.get("essential", True)]
    inits = [d for d in definitions if d.get("essential") is False]
    depends = {d["containerName"]: d["condition"] for d in service.get("dependsOn") or []}
    assert all(depends.get(i["name"]) == "SUCCESS" for i in inits), "init runs before the service"
    probes = []
    for group in (r for r in resources if r["type"] == TARGET_GROUP):
        if group["parent"] != component["urn"]:
            continue
        check = group["inputs"]["healthCheck"]
        assert check["enabled"] is True
        probes.append(Probe(check["protocol"], int(check["port"]), check.get("path")))
    return TaskSpec(
        role=role,
        service=_container(service),
        init=_container(inits[0]) if inits else None,
        volumes=[v["name"] for v in task["inputs"].get("volumes") or []],
        probes=probes,
    )


def translate_database_url(url: str, gateway: str, port: int, database: str) -> str:
    parts = urlsplit(url)
    assert parts.scheme == "postgresql+psycopg", f"database URL scheme {parts.scheme!r}"
    assert parts.hostname and parts.hostname.endswith(".rds.amazonaws.com"), url
    assert parts.path == f"/{DATABASE_NAME}", f"the program provisions {DATABASE_NAME!r}: {url}"
    return f"{parts.scheme}://root@{gateway}:{port}/{database}"


def translate_bus_url(url: str, gateway: str, port: int) -> str:
    parts = urlsplit(url)
    assert parts.scheme == "nats", f"bus URL scheme {parts.scheme!r}"
    assert parts.hostname and parts.hostname.startswith(f"{BUS_HOST}."), url
    assert parts.port == CLIENT_PORT, url
    return f"nats://{gateway}:{port}"


def _bus_clients(monitor_url: str) -> list[dict[str, Any]]:
    """The bus's client connections (NATS monitoring, `/connz`)."""
    answer = httpx.get(f"{monitor_url}/connz", timeout=5)
    answer.raise_for_status()
    return list(answer.json().get("connections") or [])


def secret_values(ca: RegionCA) -> dict[str, str]:
    """What the region's key ceremony puts in each secret (by the secret's name)."""
    return {
        "region-ca-cert": cert_pem(ca.cert).decode(),
        "region-ca-key": key_pem(ca.key).decode(),
        "relay-token": secrets.token_urlsafe(32),
        "pstn-token": secrets.token_urlsafe(32),
        "interop-token": secrets.token_urlsafe(32),
        "recording-key": base64.b64encode(secrets.token_bytes(32)).decode(),
    }


def _mounts(container: Container, volumes: dict[str, Path]) -> list[Mount]:
    return [
        Mount(volumes[name], path, writable=not read_only)
        for name, (path, read_only) in container.mounts.items()
    ]


def _run_init(
    spec: TaskSpec, host: NetnsHost, volumes: dict[str, Path], ca: RegionCA, tmp: Path
) -> None:
    assert spec.init is not None
    values = secret_values(ca)
    env = {"PATH": IMAGE_PATH}
    for variable, arn in spec.init.secrets.items():
        env[variable] = values[arn.rsplit("/", 1)[-1]]
    root = tmp / "init-root"
    root.mkdir()
    argv = host.argv(readonly_root_argv(root, _mounts(spec.init, volumes), spec.init.command))
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise ContractBroken(f"the secrets init container failed: {done.stderr[-1500:]}")


def run_contract(spec: TaskSpec, tmp: Path) -> dict[str, Any]:
    """Start the role's task as `spec` says and check the contract; raises ContractBroken."""
    import psycopg

    volumes = {}
    for name in spec.volumes:
        volumes[name] = tmp / f"volume-{name}"
        volumes[name].mkdir()
    ca = RegionCA.create("meeting-na")
    ca_file = tmp / "ca.pem"
    ca_file.write_bytes(cert_pem(ca.cert))
    writable = [volumes[n] for n, (_p, ro) in spec.service.mounts.items() if not ro]
    with (
        NetnsHost() as host,
        fresh_database() as database,
        TcpForwarder(host.gateway, POSTGRES) as postgres,
        moto_s3(host.gateway) as moto,
        local_nats(tmp / "bus") as bus,
        TcpForwarder(host.gateway, (bus.host, bus.port)) as bus_port,
    ):
        if spec.init is not None:
            _run_init(spec, host, volumes, ca, tmp)
        env = {"PATH": IMAGE_PATH}
        for name, value in spec.service.env.items():
            if name == "ROOMTRUST_DATABASE_URL":
                value = translate_database_url(value, postgres.host, postgres.port, database)
            elif name == "ROOMTRUST_BUS_URL":
                value = translate_bus_url(value, bus_port.host, bus_port.port)
            elif name == "ROOMTRUST_BLOB_BUCKET":
                moto.client().create_bucket(Bucket=value)  # the program provisions it
                env["ROOMTRUST_BLOB_ENDPOINT_URL"] = moto.endpoint_url
                env.update(MOTO_CREDENTIALS)
            env[name] = value
        root = tmp / "root"
        root.mkdir()
        command = spec.service.command
        argv = host.argv(readonly_root_argv(root, _mounts(spec.service, volumes), command))
        started = time.monotonic()
        process = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            evidence = _check_running(spec, host, process, ca_file, writable, started)
            if spec.role == "signaling":  # a replica of the region, not a region of its own
                evidence["bus"] = _joined_bus(bus.monitor_url)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if spec.role == "signaling":  # its store must be the database the program gave it
            with psycopg.connect(f"postgresql://root@127.0.0.1:5432/{database}") as conn:
                row = conn.execute(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN "
                    "('pg_catalog', 'information_schema')"
                ).fetchone()
            if not row or not row[0]:
                raise ContractBroken("signaling made no table in the database the program gave it")
            evidence["tables"] = row[0]
    return evidence


def _joined_bus(monitor_url: str) -> dict[str, Any]:
    """The signaling task's connection to the bus (a replica connects before it serves)."""
    clients = [c for c in _bus_clients(monitor_url) if c.get("name") == "roomtrust-meeting-na"]
    if not clients:
        raise ContractBroken(
            "signaling serves but did not join the region's bus (no roomtrust-meeting-na "
            "connection on it): each task would be a region of its own, a conference split "
            "between them"
        )
    return {"connections": len(clients), "lang": clients[0].get("lang")}


def _answers(client: httpx.Client, address: str, probe: Probe, ca_file: Path) -> bool:
    if probe.protocol == "HTTPS":
        url = f"https://{address}:{probe.port}{probe.path}"
        try:
            return client.get(url).status_code == 200
        except httpx.TransportError:
            return False
    # a TCP check of a TLS port: the handshake completes under the region CA
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.check_hostname = False
    try:
        with (
            socket.create_connection((address, probe.port), timeout=2) as raw,
            ctx.wrap_socket(raw),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False


def _check_running(
    spec: TaskSpec,
    host: NetnsHost,
    process: subprocess.Popen[str],
    ca_file: Path,
    writable: list[Path],
    started: float,
) -> dict[str, Any]:
    if not spec.probes:
        raise ContractBroken("the target groups name no health check")
    ready_at = None
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.check_hostname = False  # a probe dials an address; the chain is the region CA's
    with httpx.Client(verify=ctx, timeout=2) as client:
        while True:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                raise ContractBroken(f"the service exited ({process.returncode}): {output[-1500:]}")
            answered = {p: _answers(client, host.address, p, ca_file) for p in spec.probes}
            if all(answered.values()):
                break
            now = time.monotonic()
            ready = [f for d in writable for f in d.glob(READY[spec.role])]
            if ready_at is None and ready:
                ready_at = now
            if ready_at is not None and now - ready_at > 3:
                silent = [p for p, ok in answered.items() if not ok]
                raise ContractBroken(
                    f"the service serves, but its health check {silent} gets no answer on "
                    f"{host.address}"
                )
            if now - started > START_TIMEOUT:
                raise ContractBroken(f"no answer to the health checks in {START_TIMEOUT} s")
            time.sleep(0.3)
    # what it wrote while it serves (a gateway removes its ready file when it stops)
    written = sorted(str(f.relative_to(d)) for d in writable for f in d.rglob("*") if f.is_file())
    return {
        "start_seconds": round(time.monotonic() - started, 1),
        "probes": [f"{p.protocol} {p.port}{p.path or ''}" for p in spec.probes],
        "written": written,
    }


# -- the contract, as the prod-meeting-na program says ---------------------------------------------


@pytest.fixture(scope="module")
def specs(stack_graphs: Graphs) -> dict[str, TaskSpec]:
    return {role: task_spec(stack_graphs[STACK], role) for role in ROLES}


@pytest.mark.parametrize("role", ROLES)
def test_each_container_keeps_the_contract_of_the_program(
    specs: dict[str, TaskSpec], role: str, tmp_path: Path
) -> None:
    spec = specs[role]
    served = "meeting" if role == "signaling" else role
    assert spec.service.command == ["roomtrust", "serve", served, "--region", "na"]
    assert spec.service.mounts["data"] == ("/data", False)
    evidence = run_contract(spec, tmp_path)
    # its state is in the volume (the root is read-only: nothing else could have been written)
    assert any(name.endswith("ready.json") for name in evidence["written"]), evidence["written"]
    print(f"{STACK} {role}: {evidence}")


# -- negative controls: a program that breaks the contract fails it --------------------------------


def _without(name: str) -> Callable[[TaskSpec], TaskSpec]:
    def change(spec: TaskSpec) -> TaskSpec:
        assert name in spec.service.env, f"the program does not set {name}"
        env = {k: v for k, v in spec.service.env.items() if k != name}
        return replace(spec, service=replace(spec.service, env=env))

    return change


def _renamed(name: str, new: str) -> Callable[[TaskSpec], TaskSpec]:
    def change(spec: TaskSpec) -> TaskSpec:
        assert name in spec.service.env, f"the program does not set {name}"
        env = {(new if k == name else k): v for k, v in spec.service.env.items()}
        return replace(spec, service=replace(spec.service, env=env))

    return change


def _no_writable_volume(spec: TaskSpec) -> TaskSpec:
    mounts = {v: m for v, m in spec.service.mounts.items() if m[1]}  # the read-only ones only
    assert mounts != spec.service.mounts
    return replace(spec, service=replace(spec.service, mounts=mounts))


BROKEN_PROGRAMS: dict[str, tuple[str, Callable[[TaskSpec], TaskSpec], str]] = {
    "signaling without ROOMTRUST_HOST": (
        "signaling",
        _without("ROOMTRUST_HOST"),
        "gets no answer",
    ),
    "signaling with ROOMTRUST_PUBLIC_HOSTS renamed": (
        "signaling",
        _renamed("ROOMTRUST_PUBLIC_HOSTS", "ROOMTRUST_PUBLIC_HOST"),
        "unknown setting(s): ROOMTRUST_PUBLIC_HOST ",
    ),
    "signaling without ROOMTRUST_DATABASE_URL": (
        "signaling",
        _without("ROOMTRUST_DATABASE_URL"),
        # replicated (the bus URL is set), it refuses SQLite rather than make its tables there
        "a replicated region needs a PostgreSQL database",
    ),
    "signaling without a writable volume": (
        "signaling",
        _no_writable_volume,
        "Read-only file system",
    ),
    "signaling without ROOMTRUST_BUS_URL": (
        "signaling",
        _without("ROOMTRUST_BUS_URL"),
        "did not join the region's bus",
    ),
    "relay without ROOMTRUST_PORT": ("relay", _without("ROOMTRUST_PORT"), "gets no answer"),
    "pstn with ROOMTRUST_CA_KEY_FILE renamed": (
        "pstn",
        _renamed("ROOMTRUST_CA_KEY_FILE", "ROOMTRUST_CA_KEY_PATH"),
        "unknown setting(s): ROOMTRUST_CA_KEY_PATH ",
    ),
    "interop without ROOMTRUST_SIP_PORT": (
        "interop",
        _without("ROOMTRUST_SIP_PORT"),
        "gets no answer",
    ),
}


@pytest.mark.parametrize("broken", list(BROKEN_PROGRAMS))
def test_a_program_that_breaks_the_contract_fails_it(
    specs: dict[str, TaskSpec], broken: str, tmp_path: Path
) -> None:
    role, change, reason = BROKEN_PROGRAMS[broken]
    with pytest.raises(ContractBroken) as failure:
        run_contract(change(specs[role]), tmp_path)
    assert reason in str(failure.value)


# -- the bus: the NATS task the program deploys, and signaling's URL to it -------------------------

NATS_BINARY = "/usr/sbin/nats-server"  # this machine's nats-server stands in for the image's


def bus_task(graph: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The bus's container definition, its ECS service's inputs and its Cloud Map name."""
    resources = graph["resources"]
    [component] = [r for r in resources if r["type"] == "roomtrust:meeting:NatsBus"]
    children = [r for r in resources if r["parent"] == component["urn"]]
    [task] = [r for r in children if r["type"] == TASK]
    [service] = [r for r in children if r["type"] == "aws:ecs/service:Service"]
    [registry] = [r for r in children if r["type"] == "aws:servicediscovery/service:Service"]
    [namespace] = [
        r
        for r in resources
        if r["type"] == "aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace"
    ]
    [container] = json.loads(task["inputs"]["containerDefinitions"])
    assert not task["inputs"].get("volumes"), "the bus has no volume: nothing to persist to"
    return (
        container,
        service["inputs"],
        f"{registry['inputs']['name']}.{namespace['inputs']['name']}",
    )


def test_signaling_is_given_the_bus_the_program_deploys(
    stack_graphs: Graphs, specs: dict[str, TaskSpec]
) -> None:
    container, service, name = bus_task(stack_graphs[STACK])
    assert specs["signaling"].service.env["ROOMTRUST_BUS_URL"] == f"nats://{name}:{CLIENT_PORT}"
    assert service["serviceRegistries"]["registryArn"]
    assert service["desiredCount"] >= 2  # a bus task's loss leaves the region a bus
    image, _, tag = container["image"].partition(":")
    assert image == "nats" and tag and tag != "latest", container["image"]
    assert container["readonlyRootFilesystem"] is True
    command = container["command"]
    assert command[0] == "nats-server"
    assert not [a for a in command if a.split("=")[0] in checks.NATS_PERSISTENCE_FLAGS], command
    # negative control: the same program with JetStream on is refused by the policy
    assert checks.check("IN-07", stack_graphs[STACK]).passed
    broken = checks.check("IN-07", FAULTS["a bus with JetStream"](stack_graphs[STACK]))
    assert [v.message for v in broken.violations] == [
        "the bus runs NATS with --jetstream: JetStream would persist what crosses it"
    ]


def run_bus(container: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """The bus's command as the task definition says (its Cloud Map route name does not resolve
    here, so the task runs as a cluster of one), under a read-only root with no volume; its health
    check must answer inside the task and its client port on the task's address."""
    command = [NATS_BINARY, *container["command"][1:]]
    health = container["healthCheck"]["command"]
    assert health[0] == "CMD"
    root = tmp / "bus-root"
    root.mkdir()
    with NetnsHost() as host:
        argv = host.argv(readonly_root_argv(root, [], command))
        process = subprocess.Popen(
            argv, env={"PATH": IMAGE_PATH}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            started = time.monotonic()
            while subprocess.run(host.argv(health[1:]), capture_output=True).returncode != 0:
                if process.poll() is not None:
                    output = process.stdout.read() if process.stdout else b""
                    raise ContractBroken(f"the bus exited: {output[-1500:]!r}")
                if time.monotonic() - started > 15:
                    raise ContractBroken("the bus's health check never answered")
                time.sleep(0.2)
            with socket.create_connection((host.address, CLIENT_PORT), timeout=5) as client:
                info = json.loads(client.recv(4096).removeprefix(b"INFO "))
            return {
                "health_seconds": round(time.monotonic() - started, 1),
                "version": info.get("version"),
                "jetstream": info.get("jetstream", False),
            }
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_the_bus_task_serves_clients_and_its_health_check(
    stack_graphs: Graphs, tmp_path: Path
) -> None:
    container, _service, _name = bus_task(stack_graphs[STACK])
    evidence = run_bus(container, tmp_path)
    assert evidence["jetstream"] is False, evidence
    print(f"{STACK} bus: {evidence}")


def test_a_bus_without_its_monitoring_port_fails_its_health_check(
    stack_graphs: Graphs, tmp_path: Path
) -> None:
    container, _service, _name = bus_task(stack_graphs[STACK])
    command = list(container["command"])
    at = command.index("--http_port")
    del command[at : at + 2]
    with pytest.raises(ContractBroken, match="health check never answered"):
        run_bus({**container, "command": command}, tmp_path)
