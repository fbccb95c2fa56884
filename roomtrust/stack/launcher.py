"""Start, stop and inspect the local stack: one process per service region on 127.0.0.1 with TLS.

`start()` launches every region as its own process (own database, own CA under the stack's home),
waits until each has written its ready file, and writes `stack.json` (`protocol.stack`: the URLs and
CA bundles that every other tool reads). Each meeting region then gets its media relays (`ROOMTRUST_RELAYS_PER_REGION`,
default 1; `roomtrust up` starts 2, so a region can fail over at once), listed under `relays` in
`stack.json`; the region itself replaces a relay that dies. With `pstn`, a meeting region also gets
its PSTN gateway (`pstn` in `stack.json`).
The processes outlive the command; `stop()` ends them cleanly, relays last.

With `replicas` N > 1 (PostgreSQL only) each DM region runs as N processes (`roomtrust serve dm`) on
one database schema, sharing the region's CA and release key as secret files (the way the cloud
mounts them from the key vault) and one blob directory, behind one HAProxy (`balancer.py`); the
region's endpoint in `stack.json` is the balancer, and the replicas and balancers are listed
beside it. `replicas` may also give a count per service (`{"dm": 3, "meeting": 2}`): a meeting
region with 2 or more runs as that many signaling replicas (`roomtrust serve meeting`) behind its
own HAProxy on its own schema, with the stack's one NATS server between them, its relays
registered in the database, its PSTN and interop gateways dialling it through the balancer
(`meeting_region.py`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from protocol.regions import DM_REGIONS, MEETING_REGIONS
from protocol.stack import (
    Endpoint,
    Gateway,
    InteropGateway,
    LoadBalancer,
    MessageBus,
    Relay,
    Replica,
    Stack,
    StackError,
    read_stack,
    stack_file,
    write_stack,
)
from roomtrust.container_host import write_region_secrets
from roomtrust.stack import balancer as haproxy
from services.common.db import is_postgres

# service name -> (module run with `python -m`, its regions)
SERVICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "dm": ("services.dm.main", DM_REGIONS),
}
if (Path(__file__).resolve().parents[2] / "services" / "meeting" / "main.py").exists():
    SERVICES["meeting"] = ("services.meeting.main", MEETING_REGIONS)

START_TIMEOUT = 60.0
REPLICATED_SERVICES = ("dm", "meeting")  # the services whose regions may run as replicas
# Connections each replica keeps in its pool (up to three times as many under load): a stack of
# 17 replicas must fit PostgreSQL's default max_connections (100) beside the tools that audit it.
REPLICA_POOL_SIZE = 2
# The same for a region's single process on PostgreSQL: the stack's seven regions, their relays and
# gateways, and the tools auditing them share one server.
SINGLE_POOL_SIZE = 3
RELAYS_ENV = "ROOMTRUST_RELAYS_PER_REGION"
UP_RELAYS = 2  # relays per meeting region of `roomtrust up`: a region can fail over at once
DEFAULT_RELAYS = 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class _Launch:
    service: str
    region: str
    proc: subprocess.Popen[bytes]
    ready: Path
    log: Path


def _spawn(
    home: Path,
    service: str,
    region: str,
    port: int = 0,
    schema_prefix: str = "",
    database_url: str = "",
) -> _Launch:
    module = SERVICES[service][0]
    directory = home / service / region
    directory.mkdir(parents=True, exist_ok=True)
    ready = directory / "ready.json"
    ready.unlink(missing_ok=True)
    proc, log_path = _start_module(
        home,
        f"{service}-{region}",
        module,
        ["--region", region, "--home", str(home), "--port", str(port)],
        {
            **os.environ,
            "ROOMTRUST_SCHEMA_PREFIX": schema_prefix,
            **(_database_env(database_url, SINGLE_POOL_SIZE) if database_url else {}),
        },
    )
    return _Launch(service, region, proc, ready, log_path)


def _start_module(
    home: Path, log_name: str, module: str, args: list[str], env: Mapping[str, str] | None
) -> tuple[subprocess.Popen[bytes], Path]:
    """`python -m module args` in a session of its own, its output appended to
    `<home>/logs/<log_name>.log`; `env=None` keeps the launcher's environment."""
    log_path = home / "logs" / f"{log_name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=None if env is None else dict(env),
        )
    return proc, log_path


def _database_env(database_url: str, pool_size: int) -> dict[str, str]:
    """The database of a stack's process, with its pool kept small (unless the caller set one)."""
    return {
        "ROOMTRUST_DATABASE_URL": database_url,
        "ROOMTRUST_DATABASE_POOL_SIZE": os.environ.get(
            "ROOMTRUST_DATABASE_POOL_SIZE", str(pool_size)
        ),
    }


def _await_file(launch: _Launch, deadline: float) -> None:
    while not launch.ready.exists():
        if launch.proc.poll() is not None:
            raise StackError(
                f"{launch.service}/{launch.region} exited with {launch.proc.returncode}; "
                f"see {launch.log}"
            )
        if time.monotonic() > deadline:
            launch.proc.kill()
            raise StackError(f"{launch.service}/{launch.region} did not start in time")
        time.sleep(0.05)


def _await_ready(launch: _Launch, deadline: float) -> Endpoint:
    _await_file(launch, deadline)
    info = json.loads(launch.ready.read_text())
    return Endpoint(
        launch.service,
        launch.region,
        url=f"https://127.0.0.1:{info['port']}",
        ca_file=launch.ready.parent / "ca" / "ca.pem",
        pid=launch.proc.pid,
        port=int(info["port"]),
        module=SERVICES[launch.service][0],
        log=str(launch.log),
    )


def launch_region(
    home: Path, service: str, region: str, port: int = 0, schema_prefix: str = ""
) -> Endpoint:
    """Start one region process and wait for its ready file; returns its stack entry."""
    launch = _spawn(home, service, region, port, schema_prefix)
    return _await_ready(launch, time.monotonic() + START_TIMEOUT)


def start(
    home: Path,
    services: list[str] | None = None,
    schema_prefix: str | None = None,
    relays: int | Mapping[str, int] | None = None,
    pstn: bool | Sequence[str] = False,
    replicas: int | Mapping[str, int] = 1,
    database_url: str | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Stack:
    """Start the stack (or return the running one) and write stack.json.

    On PostgreSQL each region keeps its data in the schema `<schema_prefix><service>_<region>`;
    the prefix defaults to ROOMTRUST_SCHEMA_PREFIX, so two stacks can share one database.
    `relays` is the number of media relays per meeting region, or a count per region name
    (default: ROOMTRUST_RELAYS_PER_REGION, else 1). `pstn` starts the PSTN gateway of every
    meeting region (True) or of the regions named. `replicas` > 1 runs every DM and meeting region
    as that many processes behind a balancer (or a count per service name), on the PostgreSQL
    database of `database_url` (default: ROOMTRUST_DATABASE_URL); a StackError says why when there
    is none. `extra_env`: settings (ROOMTRUST_*) for the replicated regions' processes."""
    counts = replica_counts(replicas)
    if any(count > 1 for count in counts.values()):
        database_url = require_postgres(database_url)
    if schema_prefix is None:
        schema_prefix = os.environ.get("ROOMTRUST_SCHEMA_PREFIX", "")
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    if stack_file(home).exists():
        running = read_stack(home)
        if all(_alive(ep.pid) for ep in running.endpoints()):
            return running
        stop(home)
    stack = Stack(home, schema_prefix)
    environment_url = os.environ.get("ROOMTRUST_DATABASE_URL", "")
    stack.database_url = database_url or (environment_url if is_postgres(environment_url) else "")
    chosen = services or list(SERVICES)
    replicated = [s for s in chosen if counts.get(s, 1) > 1]
    launches = [
        _spawn(home, service, region, schema_prefix=schema_prefix, database_url=stack.database_url)
        for service in chosen
        if service not in replicated
        for region in SERVICES[service][1]
    ]
    deadline = time.monotonic() + START_TIMEOUT
    side_env: dict[str, dict[str, str]] = {}  # meeting region -> its relays' and gateways' settings
    try:
        if "meeting" in replicated:
            stack.bus = start_bus(home)
        for service in replicated:
            for region in SERVICES[service][1]:
                assert database_url is not None
                region_env: dict[str, str] = {}
                if service == "meeting":
                    assert stack.bus is not None
                    region_env = _meeting_region_env(home, region, stack.bus.url)
                    side_env[region] = {
                        **region_env,
                        "ROOMTRUST_REGION": region,
                        **_database_env(database_url, REPLICA_POOL_SIZE),
                        "ROOMTRUST_SCHEMA_PREFIX": schema_prefix,
                    }
                stack.add_replicated(
                    *launch_replicated_region(
                        home,
                        service,
                        region,
                        counts[service],
                        database_url,
                        schema_prefix=schema_prefix,
                        extra_env={**(extra_env or {}), **region_env},
                    )
                )
                if service == "meeting":
                    _write_region_entry(home, region, stack.balancers[service][region])
        for launch in launches:
            stack.add(_await_ready(launch, deadline))
        if "meeting" in stack.services:
            # relays and gateways start once their region is up; they get their own deadline
            stack.relays = start_relays(home, relay_counts(relays), envs=side_env)
            gateways = list(MEETING_REGIONS) if pstn is True else list(pstn or ())
            stack.pstn = {
                region: launch_pstn(home, region, env=side_env.get(region)) for region in gateways
            }
            stack.interop = {
                region: launch_interop(home, region, env) for region, env in side_env.items()
            }
    except Exception:
        for launch in launches:
            if launch.proc.poll() is None:
                terminate(launch.proc.pid)
        for gateway in stack.interop.values():
            terminate(gateway.pid)
        stop_replicated(stack)
        stop_relays(home)
        stop_bus(stack)
        raise
    write_stack(stack)
    return stack


def start_as_up(home: Path) -> Stack:
    """The stack `roomtrust up` starts (two relays and a PSTN gateway per meeting region), or the
    running one: what the compliance run checks when it starts the stack itself."""
    return start(home, relays=UP_RELAYS, pstn=True)


def replica_counts(replicas: int | Mapping[str, int]) -> dict[str, int]:
    """Processes per region of each replicated service: one count for all, or one per service (a
    service not named runs one process per region); an unknown service or a count below 1 is a
    StackError."""
    if isinstance(replicas, int):
        replicas = dict.fromkeys(REPLICATED_SERVICES, replicas)
    for service, count in replicas.items():
        if service not in REPLICATED_SERVICES:
            raise StackError(
                f"replicas: {service!r} cannot run as replicas "
                f"(only {', '.join(REPLICATED_SERVICES)})"
            )
        if count < 1:
            raise StackError(
                f"replicas: {service} needs at least 1 process per region, not {count}"
            )
    return dict(replicas)


def start_bus(home: Path) -> MessageBus:
    from roomtrust.stack import meeting_region

    return meeting_region.start_bus(home)


def _meeting_region_env(home: Path, region: str, bus_url: str) -> dict[str, str]:
    """The settings every process of a replicated meeting region gets: the bus, the region's
    shared files (CA, service tokens, recording key) and its blob directory."""
    from roomtrust.stack import meeting_region

    files = meeting_region.region_files(home, region)
    return {
        **files.env(),
        "ROOMTRUST_BUS_URL": bus_url,
        "ROOMTRUST_BLOB_DIRECTORY": str(files.directory / "objects"),
    }


def _write_region_entry(home: Path, region: str, balancer: LoadBalancer) -> None:
    from roomtrust.stack import meeting_region

    meeting_region.write_region_entry(home, region, balancer)


def stop_bus(stack: Stack) -> int:
    """Stop the stack's NATS server (after the replicas that use it)."""
    if stack.bus is None or not _alive(stack.bus.pid):
        return 0
    terminate(stack.bus.pid)
    return 1


def require_postgres(database_url: str | None) -> str:
    """The PostgreSQL URL replicas share; a StackError says why there is none."""
    url = database_url or os.environ.get("ROOMTRUST_DATABASE_URL")
    if not url:
        raise StackError(
            "replicas share one PostgreSQL database: give --database-url or ROOMTRUST_DATABASE_URL"
        )
    if not is_postgres(url):
        raise StackError(
            f"replicas need PostgreSQL, not {url.split(':', 1)[0]}: SQLite is one process's file "
            "(its advisory locks, LISTEN/NOTIFY and row locks are what the replicas agree through)"
        )
    return url


def _region_secret_files(home: Path, service: str, region: str) -> dict[str, Path]:
    """The region's secrets (CA certificate and key, release key) as the files a secret volume
    mounts, made once under the stack's home and shared by every replica of the region."""
    directory = home / "secrets" / f"{service}-{region}"
    names = ("region-ca-cert", "region-ca-key", "release-key")
    if all((directory / n).exists() for n in names):
        return {n: directory / n for n in names}
    return dict(write_region_secrets(directory, f"{service}-{region}").files)


def launch_replicated_region(
    home: Path,
    service: str,
    region: str,
    count: int,
    database_url: str,
    schema_prefix: str = "",
    extra_env: Mapping[str, str] | None = None,
    timeout: float = START_TIMEOUT,
) -> tuple[Endpoint, list[Replica], LoadBalancer]:
    """Start `count` processes of one region on one PostgreSQL schema, all at once (the first to
    take the migration lock migrates the store; the others wait for it), then one balancer in
    front of them once every replica is ready; returns the region's endpoint (the balancer's),
    its replicas and its balancer. On any failure nothing it started outlives it."""
    home = home.resolve()
    secrets_files = _region_secret_files(home, service, region)
    blobs = home / service / region / "objects"
    env = {
        **os.environ,
        "ROOMTRUST_CA_CERT_FILE": str(secrets_files["region-ca-cert"]),
        "ROOMTRUST_CA_KEY_FILE": str(secrets_files["region-ca-key"]),
        "ROOMTRUST_RELEASE_KEY_FILE": str(secrets_files["release-key"]),
        "ROOMTRUST_BLOB_DIRECTORY": str(blobs),
        "ROOMTRUST_DATABASE_POOL_SIZE": os.environ.get(
            "ROOMTRUST_DATABASE_POOL_SIZE", str(REPLICA_POOL_SIZE)
        ),
        **(extra_env or {}),  # a meeting region's CA is its own directory's (meeting_region.py)
        "ROOMTRUST_REGION": region,
        "ROOMTRUST_DATABASE_URL": database_url,
        "ROOMTRUST_SCHEMA_PREFIX": schema_prefix,
    }
    ca_file = Path(env["ROOMTRUST_CA_CERT_FILE"])
    env.pop("ROOMTRUST_PORT", None)
    env.pop("ROOMTRUST_HOME", None)
    launches = [
        _spawn_replica(home, service, region, f"r{index + 1}", env) for index in range(count)
    ]
    deadline = time.monotonic() + timeout
    try:
        replicas = []
        for name, launch in launches:
            _await_file(launch, deadline)
            port = int(json.loads(launch.ready.read_text())["port"])
            replicas.append(
                Replica(
                    service,
                    region,
                    name,
                    launch.proc.pid,
                    port,
                    f"https://127.0.0.1:{port}",
                    str(launch.log),
                )
            )
        running = haproxy.start_balancer(
            home / service / region / "balancer",
            f"{service}_{region}",
            [haproxy.Backend(r.name, r.port) for r in replicas],
            detach=True,
        )
        try:
            haproxy.wait_for_states(
                running.stats_socket,
                {r.name: "UP" for r in replicas},
                timeout=max(1.0, deadline - time.monotonic()),
            )
        except haproxy.BalancerError:
            haproxy.stop_balancer(running.pid)
            raise
    except Exception:
        for _name, launch in launches:
            if launch.proc.poll() is None:
                terminate(launch.proc.pid)
        raise
    balancer = LoadBalancer(
        service,
        region,
        running.pid,
        running.port,
        running.url,
        str(running.config),
        str(running.stats_socket),
        str(running.log),
    )
    endpoint = Endpoint(
        service,
        region,
        url=running.url,
        ca_file=ca_file,
        pid=running.pid,
        port=running.port,
        module=SERVICES[service][0],
        log=str(running.log),
    )
    return endpoint, replicas, balancer


def _spawn_replica(
    home: Path, service: str, region: str, name: str, env: Mapping[str, str]
) -> tuple[str, _Launch]:
    """One replica: its own state directory (ready file, server certificate), the shared rest."""
    replica_home = home / service / region / "replicas" / name
    ready = replica_home / service / region / "ready.json"
    ready.parent.mkdir(parents=True, exist_ok=True)
    if service == "meeting":
        from roomtrust.stack import meeting_region

        meeting_region.share_directories(home / service / region, ready.parent)
    ready.unlink(missing_ok=True)
    proc, log_path = _start_module(
        home,
        f"{service}-{region}-{name}",
        SERVICES[service][0],
        ["--region", region, "--home", str(replica_home), "--port", "0"],
        env,
    )
    return name, _Launch(service, region, proc, ready, log_path)


def stop_replicated(stack: Stack) -> int:
    """Stop the balancers first (no new connection reaches a stopping replica), then replicas."""
    count = 0
    for balancer in stack.all_balancers():
        if _alive(balancer.pid):
            count += 1
            haproxy.stop_balancer(balancer.pid)
    for replica in stack.all_replicas():
        if _alive(replica.pid):
            count += 1
            terminate(replica.pid)
    return count


def relay_counts(relays: int | Mapping[str, int] | None) -> dict[str, int]:
    if relays is None:
        relays = int(os.environ.get(RELAYS_ENV, DEFAULT_RELAYS))
    if isinstance(relays, int):
        return dict.fromkeys(MEETING_REGIONS, relays)
    return {region: count for region, count in relays.items() if count > 0}


def _side_env(env: Mapping[str, str] | None) -> dict[str, str] | None:
    """A side process's environment: the launcher's, with a replicated region's settings."""
    if env is None:
        return None  # as before: the launcher's own environment
    merged = {**os.environ, **env}
    merged.pop("ROOMTRUST_PORT", None)
    merged.pop("ROOMTRUST_HOME", None)
    return merged


def _spawn_relay(
    home: Path, region: str, name: str, env: Mapping[str, str] | None = None
) -> _Launch:
    from services.meeting.relay.files import ready_file

    ready = ready_file(home, region, name)
    ready.unlink(missing_ok=True)
    proc, log_path = _start_module(
        home,
        f"relay-{region}-{name}",
        "services.meeting.relay",
        ["--region", region, "--home", str(home), "--name", name],
        _side_env(env),
    )
    return _Launch("relay", region, proc, ready, log_path)


def start_relays(
    home: Path,
    counts: Mapping[str, int],
    deadline: float | None = None,
    envs: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, dict[str, Relay]]:
    """Start relays (after their meeting regions, whose CA they use); returns their entries.
    `envs`: the settings of a replicated region's relays (its database, CA, control token)."""
    home = home.resolve()
    deadline = deadline or time.monotonic() + START_TIMEOUT
    launches = [
        _spawn_relay(home, region, f"relay-{index + 1}", (envs or {}).get(region))
        for region, count in counts.items()
        for index in range(count)
    ]
    found: dict[str, dict[str, Relay]] = {}
    try:
        for launch in launches:
            _await_file(launch, deadline)
            relay = _relay_entry(launch)
            found.setdefault(launch.region, {})[relay.name] = relay
    except Exception:
        for launch in launches:  # ready or not, none of them outlives a failed start
            if launch.proc.poll() is None:
                terminate(launch.proc.pid)
        raise
    return found


def _relay_entry(launch: _Launch) -> Relay:
    info = json.loads(launch.ready.read_text())
    return Relay(
        launch.region,
        str(info["name"]),
        launch.proc.pid,
        str(info["control_url"]),
        int(info["media_port"]),
        str(launch.log),
    )


def launch_pstn(
    home: Path, region: str, deadline: float | None = None, env: Mapping[str, str] | None = None
) -> Gateway:
    """Start a meeting region's PSTN gateway (after the region) and wait until it is ready."""
    home = home.resolve()
    directory = home / "meeting" / region / "pstn"
    directory.mkdir(parents=True, exist_ok=True)
    ready = directory / "ready.json"
    ready.unlink(missing_ok=True)
    proc, log_path = _start_module(
        home,
        f"pstn-{region}",
        "services.meeting.pstn",
        ["--region", region, "--home", str(home)],
        _side_env(env),
    )
    launch = _Launch("pstn", region, proc, ready, log_path)
    _await_file(launch, deadline or time.monotonic() + START_TIMEOUT)
    info = json.loads(ready.read_text())
    return Gateway(region, proc.pid, str(info["control_url"]), str(log_path))


def launch_interop(
    home: Path, region: str, env: Mapping[str, str], deadline: float | None = None
) -> InteropGateway:
    """Start a replicated meeting region's SIP/H.323 interop gateway (it dials the region through
    its balancer) on free loopback ports and wait until it is ready."""
    from services.meeting.interop.server import ready_file

    home = home.resolve()
    ready = ready_file(home, region)
    ready.parent.mkdir(parents=True, exist_ok=True)
    ready.unlink(missing_ok=True)
    settings = {
        **env,
        "ROOMTRUST_HOST": "127.0.0.1",
        "ROOMTRUST_SIP_PORT": "0",
        "ROOMTRUST_H323_PORT": "0",
    }
    proc, log_path = _start_module(
        home,
        f"interop-{region}",
        "services.meeting.interop",
        ["--region", region, "--home", str(home)],
        _side_env(settings),
    )
    launch = _Launch("interop", region, proc, ready, log_path)
    _await_file(launch, deadline or time.monotonic() + START_TIMEOUT)
    info = json.loads(ready.read_text())
    return InteropGateway(
        region, proc.pid, int(info["sip_port"]), int(info["h323_port"]), str(log_path)
    )


def stop_relays(home: Path) -> int:
    """Stop every running relay and PSTN gateway under the home (those the stack started and the
    relays' replacements)."""
    if "meeting" not in SERVICES:
        return 0
    from services.meeting.relay.files import read_ready, running_relays

    count = 0
    for region in MEETING_REGIONS:
        gateway = home.resolve() / "meeting" / region / "pstn" / "ready.json"
        with contextlib.suppress(OSError, ValueError, KeyError):
            pid = int(read_ready(gateway)["pid"])
            if _alive(pid):
                count += 1
                terminate(pid)
        # a replicated region's replicas share its relays directory (their replacement relays are
        # there), but a replica's own directory is searched too, so no relay outlives `down`
        replicas = home.resolve() / "meeting" / region / "replicas"
        for relay_home in [home.resolve(), *sorted(replicas.glob("*"))]:
            for ready in running_relays(relay_home, region):
                count += 1
                terminate(int(ready["pid"]))
    return count


def terminate(pid: int, timeout: float = 10.0) -> None:
    if not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(home: Path) -> int:
    """Stop every process of the stack; returns how many were running."""
    home = home.resolve()
    if not stack_file(home).exists():
        return stop_relays(home)
    stack = read_stack(home)
    running = 0
    for gateway in stack.interop.values():
        if _alive(gateway.pid):
            running += 1
            terminate(gateway.pid)
    running += stop_replicated(stack)
    for ep in stack.endpoints():
        if _alive(ep.pid):
            running += 1
            terminate(ep.pid)
    running += stop_relays(home)  # after the regions, so none of them replaces a stopped relay
    running += stop_bus(stack)
    stack_file(home).unlink(missing_ok=True)
    return running


def restart_region(home: Path, service: str, region: str) -> Endpoint:
    """Start a region again on its old port (after a crash or a kill) and update stack.json."""
    home = home.resolve()
    stack = read_stack(home)
    old = stack.endpoint(service, region)
    if stack.replicas_of(service, region):
        raise StackError(f"{service}/{region} runs as replicas: restart those, not the region")
    terminate(old.pid, timeout=5.0)
    launch = _spawn(home, service, region, old.port, stack.schema_prefix, stack.database_url)
    entry = _await_ready(launch, time.monotonic() + START_TIMEOUT)
    stack.add(entry)
    write_stack(stack)
    return entry


def alive(pid: int) -> dict[str, Any]:
    """Whether the process runs, as a health answer (for processes without a /healthz)."""
    return {"ok": True} if _alive(pid) else {"ok": False, "reason": "process not running"}


def health(ep: Endpoint, timeout: float = 3.0) -> dict[str, Any]:
    """The region's /healthz answer, or the reason it gave none."""
    return probe(ep.pid, ep.url, ep.ca_file, timeout)


def probe(pid: int, url: str, ca_file: Path, timeout: float = 3.0) -> dict[str, Any]:
    """The /healthz answer of the process `pid` at `url`, or the reason it gave none."""
    if not _alive(pid):
        return {"ok": False, "reason": "process not running"}
    try:
        with httpx.Client(verify=str(ca_file), timeout=timeout) as client:
            response = client.get(f"{url}/healthz")
        body: dict[str, Any] = response.json()
        return {"ok": response.status_code == 200, **body}
    except (httpx.HTTPError, ValueError) as exc:
        return {"ok": False, "reason": str(exc)}
