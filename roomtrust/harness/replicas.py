"""A DM region as replicas behind HAProxy on a fresh PostgreSQL database, and a fleet that runs on
an event loop of its own, for tests that share one region and one fleet across several proofs.

`balanced_region()` starts the region the way `roomtrust up --replicas N` does
(`launcher.launch_replicated_region`) on a database made for it, and stops everything (balancer,
replicas, database) afterwards. `FleetThread` runs the asyncio driver's fleet on a loop in a thread,
so a module-scoped fleet outlives each test's own code, which drives it with `call()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Coroutine, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import sqlalchemy as sa

from devices_virtual.driver.fleet import FleetRun
from protocol.stack import LoadBalancer, Replica, Stack
from roomtrust.container_host import fresh_database
from roomtrust.stack import balancer as haproxy
from roomtrust.stack import launcher
from services.common.db import make_engine

T = TypeVar("T")


@dataclass
class BalancedRegion:
    """One DM region as replicas: the stack whose endpoint is the balancer, and its parts."""

    stack: Stack
    region: str
    replicas: list[Replica]
    balancer: LoadBalancer
    database_url: str

    @property
    def schema(self) -> str:
        return f"dm_{self.region}"

    @property
    def ca_file(self) -> Path:
        return self.stack.endpoint("dm", self.region).ca_file

    def engine(self) -> sa.Engine:
        return make_engine(self.database_url, self.schema)

    def health(self, replica: Replica) -> dict[str, Any]:
        """The replica's own /healthz (asked directly, not through the balancer)."""
        with httpx.Client(verify=str(self.ca_file), timeout=5) as http:
            answer: dict[str, Any] = http.get(f"{replica.url}/healthz").json()
            return answer

    def alive(self) -> list[Replica]:
        return [r for r in self.replicas if _running(r.pid)]

    def leaders(self) -> list[Replica]:
        return [r for r in self.alive() if self.health(r)["leader"]]

    def rotation(self) -> dict[str, str]:
        """Each replica's state in the balancer (UP, DOWN, ...)."""
        states = haproxy.server_states(Path(self.balancer.stats_socket))
        return {name: state["status"] for name, state in states.items()}


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed child is reaped here)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def balanced_region(
    home: Path, count: int, region: str = "us", extra_env: Mapping[str, str] | None = None
) -> Iterator[BalancedRegion]:
    """`count` DM replicas of `region` behind one HAProxy, on a fresh PostgreSQL database."""
    with fresh_database() as database:
        url = f"postgresql+psycopg://root@127.0.0.1:5432/{database}"
        endpoint, replicas, balancer = launcher.launch_replicated_region(
            home, "dm", region, count, url, extra_env=extra_env
        )
        stack = Stack(home.resolve(), database_url=url)
        stack.add_replicated(endpoint, replicas, balancer)
        try:
            yield BalancedRegion(stack, region, replicas, balancer, url)
        finally:
            launcher.stop_replicated(stack)


class FleetThread:
    """An event loop in a thread of its own, for a fleet that several tests share."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fleet", daemon=True)
        self._thread.start()
        self.run: FleetRun | None = None

    def call(self, work: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `work` on the fleet's loop and wait for its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(work, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        if self.run is not None:
            with contextlib.suppress(Exception):
                self.call(self.run.close(), timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
