"""What a Locust user holds: a device (DeviceAgent), an administrator, or a meeting user
(MeetingClient), each claimed from the provisioned identities and bound to the gevent network.

A session's methods are the user-story steps the locustfiles call. Requests and messages fire their
own request events (the driver); `flow` adds one event per user-story step that spans several
messages (joining through the lobby is a join, a knock, an admit and an `admitted`), timed from the
first message to the answer that completes it.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from locust import User

from devices_virtual.agent import AgentConfig, DeviceAgent, DeviceIdentity, Phase
from devices_virtual.driver.keys import DeviceKeys
from devices_virtual.meeting_client import (
    CreateConference,
    JoinConference,
    LeaveConference,
    MeetingClient,
    Moderate,
    PasswordLogin,
    SendChat,
    Start,
    State,
    Stop,
)
from devices_virtual.models import get_model
from load.client import nodes
from load.client.driver import PACED, DeviceDriver, MeetingDriver, StatusError, TransportError
from load.client.network import Changes
from load.kinds import FLOW, HTTP, UNDEPLOYED_ENROLL, UserKind, endpoint

# the devices' private keys: made in this process, kept only while it runs
_KEYS = Path(tempfile.mkdtemp(prefix="roomtrust-load-keys-"))
atexit.register(shutil.rmtree, _KEYS, ignore_errors=True)


class FlowFailed(Exception):
    pass


class _Session:
    def __init__(self, user: User | None, fire: Any = None) -> None:
        if fire is None:
            assert user is not None, "give a user or a fire function"
            fire = user.environment.events.request.fire
        self.user = user
        self.fire = fire
        self.changes = Changes()

    @contextlib.contextmanager
    def flow(self, name: str) -> Iterator[None]:
        """Time a user-story step; an exception inside it is the step's failure."""
        started = time.perf_counter()
        exception: Exception | None = None
        try:
            yield
        except (FlowFailed, StatusError, TransportError) as exc:
            exception = exc
        self.fire(
            request_type=FLOW,
            name=name,
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=0,
            exception=exception,
            context={},
        )

    def wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        if not self.changes.wait_until(ready, timeout):
            raise FlowFailed(f"{what}: not within {timeout:g} s")


class DeviceSession(_Session):
    """One room device: its own key (made here, never sent), its CSR and the real DeviceAgent.

    `boot` and the heartbeat/telemetry timers are paced by the Locust tasks; an undeployed device
    paces its enrollment retries too, and counts a 403 as the expected answer."""

    def __init__(
        self,
        user: User | None,
        kind: UserKind,
        *,
        claimed: tuple[dict[str, Any], dict[str, Any]] | None = None,
        fire: Any = None,
        command_channel: bool = True,
    ) -> None:
        super().__init__(user, fire)
        if claimed is None:
            assert user is not None, "give a user (to claim an identity) or an identity"
            claimed = nodes.claim(user.environment, kind)
        identity, target = claimed
        self.identity = identity
        model = get_model(identity["model"])
        self.keys = DeviceKeys(_KEYS, identity["mac"].replace(":", ""))
        csr = self.keys.csr_pem(identity["mac"], identity["serial_number"])
        agent = DeviceAgent(
            DeviceIdentity(
                identity["mac"],
                identity["serial_number"],
                model,
                identity["name"],
                csr,
                identity.get("time_zone", "UTC"),
            ),
            AgentConfig(
                dm_url=target["dm"]["url"],
                boot_seconds=0,
                connectivity_checks=False,
                command_channel=command_channel,
            ),
        )
        undeployed = kind == "undeployed"
        self.driver = DeviceDriver(
            agent,
            nodes.network(),
            self.fire,
            keys=self.keys,
            timers=nodes.NODE.timers,
            paced=PACED | {"boot", "enroll"} if undeployed else PACED | {"boot"},
            expect={"enroll": frozenset({403})} if undeployed else None,
            names={"enroll": UNDEPLOYED_ENROLL} if undeployed else None,
            on_change=self.changes.notify,
        )

    @property
    def agent(self) -> DeviceAgent:
        return self.driver.agent

    def power_on(self) -> None:
        """Boot: time sync (answered locally), then enrollment and, once enrolled, the session."""
        self.driver.power_on()
        self.driver.tick("boot")

    def tick(self, timer: str) -> None:
        self.driver.tick(timer)

    def close(self) -> None:
        self.driver.shutdown()
        if self.driver.tls is not None:
            nodes.network().forget(self.driver.tls)
        for path in (
            self.keys.key_file,
            self.keys.csr_file,
            self.keys.cert_file,
            self.keys.ca_file,
        ):
            path.unlink(missing_ok=True)

    @property
    def online(self) -> bool:
        return self.agent.phase is Phase.ONLINE


class AdminSession(_Session):
    """A DM enterprise administrator: a bearer token and the admin API."""

    def __init__(self, user: User, kind: UserKind = "admin") -> None:
        super().__init__(user)
        identity, target = nodes.claim(user.environment, kind)
        self.url = target["dm"]["url"]
        self.profile_id = target["dm"]["profile_id"]
        self.site_ids: list[str] = target["dm"]["site_ids"]
        self.token: str | None = None
        answer = self.call(
            "POST",
            "/v1/auth/login",
            "login",
            {"email": identity["email"], "password": identity["password"]},
        )
        if isinstance(answer, dict):
            self.token = str(answer["token"])

    def call(self, method: str, path: str, kind: str, body: Any = None) -> Any:
        """One admin request, fired as `admin <kind>`; the answer's body, or None on failure."""
        started = time.perf_counter()
        name = endpoint("admin", kind)
        try:
            reply = nodes.network().http(method, self.url + path, body, tls=None, bearer=self.token)
        except TransportError as exc:
            self._fire(name, started, 0, exc)
            return None
        ok = 200 <= reply.status < 300
        self._fire(
            name, started, reply.length, None if ok else StatusError(reply.status, reply.body)
        )
        return reply.body if ok else None

    def _fire(self, name: str, started: float, length: int, exc: Exception | None) -> None:
        self.fire(
            request_type=HTTP,
            name=name,
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=length,
            exception=exc,
            context={},
        )


class MeetingSession(_Session):
    """A meeting user: the real MeetingClient, logged in with its password, its signaling socket
    open. A moderator admits its lobby automatically (the client's `auto_admit`)."""

    def __init__(self, user: User, kind: UserKind) -> None:
        super().__init__(user)
        identity, target = nodes.claim(user.environment, kind)
        self.fleet = identity["fleet"]
        client = MeetingClient(
            target["meeting"]["url"],
            PasswordLogin(identity["username"], identity["password"]),
            auto_admit=kind == "moderator",
        )
        self.driver = MeetingDriver(
            client,
            nodes.network(),
            self.fire,
            timers=nodes.NODE.timers,
            on_change=self.changes.notify,
        )

    @property
    def client(self) -> MeetingClient:
        return self.driver.client

    def now(self) -> float:
        return self.driver.clock()

    def log_in(self, timeout: float = 20.0) -> None:
        with self.flow("meeting log in"):
            self.driver.feed(Start(self.now()))
            self.wait(lambda: self.client.state in (State.READY, State.FAILED), timeout, "log in")
            if self.client.state is State.FAILED:
                raise FlowFailed(f"log in failed: {self.client.last_error}")

    @property
    def ready(self) -> bool:
        return self.client.state is State.READY

    def create(self, title: str, password: str | None, timeout: float = 20.0) -> str | None:
        with self.flow("meeting create"):
            self.driver.feed(CreateConference(self.now(), title, password=password))
            self.wait(lambda: self.client.state is not State.CREATING, timeout, "create")
            self.wait(
                lambda: self.client.state in (State.IN_CONFERENCE, State.READY), timeout, "open"
            )
            if self.client.state is not State.IN_CONFERENCE:
                raise FlowFailed(f"create refused: {self.client.last_error}")
        return self.client.conference_id if self.client.state is State.IN_CONFERENCE else None

    def lock(self, timeout: float = 10.0) -> None:
        with self.flow("meeting lock"):
            self.driver.feed(Moderate(self.now(), "lock"))
            self.wait(lambda: self.client.locked, timeout, "lock")

    def join_through_lobby(self, conference_id: str, password: str | None, timeout: float) -> bool:
        """Join a locked conference: the lobby, then the moderator's admit. False if the
        conference ended or refused before that (a race with its end, not a failure)."""
        admitted = False
        with self.flow("meeting join via lobby"):
            self.driver.feed(JoinConference(self.now(), conference_id, password))
            self.wait(lambda: self.client.state is not State.JOINING, timeout, "join")
            self.wait(lambda: self.client.state is not State.LOBBY, timeout, "admit")
            admitted = self.client.state is State.IN_CONFERENCE
            if not admitted and self.client.outcome not in ("ended", "refused", "rejected"):
                raise FlowFailed(f"not admitted ({self.client.outcome})")
        return admitted

    def chat(self, text: str, timeout: float = 10.0) -> None:
        me = self.client.participant_id
        seen = len(self.client.chat)
        with self.flow("meeting chat"):
            self.driver.feed(SendChat(self.now(), text))

            def echoed() -> bool:
                new = self.client.chat[seen:]
                return any(m.get("from") == me for m in new) or not self.in_conference

            self.wait(echoed, timeout, "chat echo")

    @property
    def in_conference(self) -> bool:
        return self.client.state is State.IN_CONFERENCE

    def leave(self) -> None:
        with self.flow("meeting leave"):
            if self.in_conference:
                self.driver.feed(LeaveConference(self.now()))

    def mute_all(self, timeout: float = 10.0) -> None:
        rosters = self.driver.statuses["received:roster"]
        with self.flow("meeting mute all"):
            self.driver.feed(Moderate(self.now(), "mute", "all"))
            self.wait(
                lambda: self.driver.statuses["received:roster"] > rosters or not self.in_conference,
                timeout,
                "mute all",
            )

    def end(self, timeout: float = 10.0) -> None:
        with self.flow("meeting end"):
            self.driver.feed(Moderate(self.now(), "end"))
            self.wait(
                lambda: self.client.outcome == "ended" or not self.in_conference, timeout, "end"
            )

    def close(self) -> None:
        if self.client.state not in (State.STOPPED, State.IDLE):
            with contextlib.suppress(Exception):
                self.driver.feed(Stop(self.now()))
        self.driver.shutdown()
