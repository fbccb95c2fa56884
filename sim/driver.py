"""The SimPy driver of the sans-IO DeviceAgent: the agent's actions become simulated delays.

An HTTP request to the DM service costs half a round trip, a turn in the region's server pool
(`sim.service.ServerPool`, with the endpoint's service time) and the other half; a connectivity
check or NTP query costs one round trip to the internet; a timer is a SimPy timeout. A message on
the command channel costs half a round trip and a turn in the pool; a download costs a request
plus its transfer time; writing an image to flash costs its size over the flash's write rate; a
reboot powers the agent on again (its boot time is the agent's own boot timer). Like the DM
region, the episode sends every unacknowledged command again when the channel reopens. Answers go
back into the agent as events. Every action is carried out: the dispatch is an exhaustive `match`.

The driver lives only for an episode (boot and enrollment, a configuration push, an update):
afterwards the device's steady state belongs to a cohort (`sim.cohort`), not to a process of its
own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Generator
from dataclasses import dataclass
from functools import partial
from typing import Any, assert_never

import simpy

from devices_virtual.agent import (
    Action,
    CancelTimer,
    ChannelMessage,
    ChannelOpened,
    CloseDmSession,
    DeviceAgent,
    DownloadDone,
    DownloadFile,
    ForgetCredential,
    HttpRequest,
    HttpResponse,
    ImageInstalled,
    InstallImage,
    KeyReady,
    NewKey,
    NtpQuery,
    NtpReply,
    OpenChannel,
    Reboot,
    SendChannel,
    StartTimer,
    StoreCredential,
    TimerFired,
    WipeIdentity,
)
from devices_virtual.agent.events import Event, PowerOn
from protocol.dm_channel import ChannelMessageType
from sim.service import ServerPool

Responder = Callable[[DeviceAgent, HttpRequest], tuple[int, Any]]
KEY_SECONDS = 0.005  # a device makes a P-256 key and its CSR
Files = Callable[[DeviceAgent, DownloadFile], tuple[int, bytes]]


@dataclass
class Network:
    """Round trips in seconds: to the device's DM region, and to the internet at large; and the
    rate at which a download from the DM region arrives."""

    dm_rtt_s: float
    internet_rtt_s: float = 0.03
    dm_bytes_per_s: float = 12.5e6  # 100 Mbit/s


def dm_answer(deployed: bool, certificate_s: float = 397 * 86400.0) -> Responder:
    """The DM service's answers as the simulator needs them: enrollment succeeds for a deployed
    device (403 otherwise) and a renewal for an enrolled one, each with a certificate lasting
    `certificate_s` on the device's clock (simulated seconds); a diagnostics upload is stored
    (201), every other session request is accepted."""

    def certificate(agent: DeviceAgent) -> dict[str, Any]:
        ends = (agent.wall_time or 0.0) + certificate_s
        not_after = dt.datetime.fromtimestamp(ends, dt.UTC).isoformat()
        return {"certificate_pem": "", "ca_pem": "", "not_after": not_after}

    def answer(agent: DeviceAgent, request: HttpRequest) -> tuple[int, Any]:
        if request.purpose == "enroll":
            if not deployed:
                return 403, {"reason": "not deployed"}
            device_id = f"dev-{agent.identity.mac.replace(':', '')}"
            return 201, {"device_id": device_id, **certificate(agent)}
        if request.purpose == "renew":
            return 201, certificate(agent)
        if request.purpose == "diagnostics":
            return 201, {"bundle_id": f"bundle-{request.request_id}"}
        return 200, {}

    return answer


def no_files(_agent: DeviceAgent, _download: DownloadFile) -> tuple[int, bytes]:
    """A DM region that serves no file: every download is answered 404."""
    return 404, b""


class Episode:
    """One agent driven from power-on until `done(agent)` holds."""

    def __init__(
        self,
        env: simpy.Environment,
        agent: DeviceAgent,
        pool: ServerPool,
        service: Callable[[str], float],
        network: Network,
        respond: Responder,
        done: Callable[[DeviceAgent], bool],
        files: Files = no_files,
        flash_bytes_per_s: float = 20e6,
    ) -> None:
        self.env, self.agent, self.pool, self.network = env, agent, pool, network
        self.service = service
        self.respond, self.done, self.files = respond, done, files
        self.flash_bytes_per_s = flash_bytes_per_s
        self._inbox: list[Event] = []
        self._wake: simpy.Event | None = None
        self._timers: dict[str, object] = {}
        self._channel: object | None = None  # the open (or opening) channel's token
        self.closed = False
        self.requests = 0
        self.enrolled_at: float | None = None
        self.renewed_at: float | None = None
        self.wiped_at: float | None = None
        self.credential = False
        self.channel_open = False
        self.sent: list[dict[str, Any]] = []  # channel messages that reached the DM region
        self.acked_at: dict[Any, float] = {}  # command id -> when its acknowledgement arrived
        self.reboots = 0
        # The region's commands not yet acknowledged: sent again whenever the channel opens.
        self.unacked: dict[Any, dict[str, Any]] = {}

    def run(self) -> Generator[simpy.Event, Any, float]:
        started = self.env.now
        self._deliver(PowerOn(self.env.now))
        while True:
            if not self._inbox:
                self._wake = self.env.event()
                yield self._wake
            event = self._inbox.pop(0)
            self._perform(self.agent.handle(event))
            if self.done(self.agent):
                self.closed = True
                return self.env.now - started

    def command(self, message: dict[str, Any]) -> bool:
        """The DM region queues a command (`{"type": "command", "command_id", ...}`) and sends it
        down the command channel if it is open; it arrives half a round trip later. Like the
        region, the episode sends every unacknowledged command again when the channel reopens.
        Returns whether it went out now."""
        self.unacked[message.get("command_id")] = message
        if not self.channel_open:
            return False
        self._down(message)
        return True

    def _down(self, message: dict[str, Any]) -> None:
        token = self._channel
        env = self.env

        def arrive() -> None:
            if self._channel is token and self.channel_open:
                self._deliver(ChannelMessage(env.now, message))

        self._after(self.network.dm_rtt_s / 2, arrive)

    # -- actions -> delays ---------------------------------------------------------------------

    def _deliver(self, event: Event) -> None:
        if self.closed:
            return
        self._inbox.append(event)
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _after(self, delay: float, then: Callable[[], None]) -> None:
        self.env.timeout(delay).callbacks.append(lambda _e: then())

    def _perform(self, actions: list[Action]) -> None:
        for action in actions:
            self._do(action)

    def _do(self, action: Action) -> None:
        env = self.env
        match action:
            case HttpRequest():
                self.requests += 1
                if action.target == "dm":
                    self._dm_request(action)
                else:
                    self._after(
                        self.network.internet_rtt_s, partial(self._answer, action.request_id)
                    )
            case NtpQuery():
                self._after(self.network.internet_rtt_s, partial(self._ntp, action.request_id))
            case StartTimer():
                token = object()
                self._timers[action.name] = token
                self._after(max(0.0, action.at - env.now), partial(self._timer, action.name, token))
            case CancelTimer():
                self._timers.pop(action.name, None)
            case StoreCredential():
                if action.new_key and self.credential:
                    self.renewed_at = env.now
                else:
                    self.enrolled_at = env.now
                self.credential = True
            case NewKey():
                ready = KeyReady(env.now + KEY_SECONDS, action.request_id, "")
                self._after(KEY_SECONDS, partial(self._deliver, ready))
            case WipeIdentity():
                self.credential = False
                self.wiped_at = env.now
            case ForgetCredential():
                self.credential = False
            case OpenChannel():
                token = self._channel = object()
                self._after(self.network.dm_rtt_s, partial(self._channel_opened, token))
            case SendChannel():
                self._send(action.message)
            case CloseDmSession():
                self._channel, self.channel_open = None, False
            case DownloadFile():
                self.requests += 1
                self._download(action)
            case InstallImage():
                written = partial(self._installed, action.version)
                self._after(action.size / self.flash_bytes_per_s, written)
            case Reboot():
                self._channel, self.channel_open = None, False
                self.reboots += 1
                self._deliver(PowerOn(env.now))
            case _:
                assert_never(action)

    def _answer(self, request_id: int) -> None:
        """A preconfigured domain (connectivity check) answers: 204 No Content."""
        self._deliver(HttpResponse(self.env.now, request_id, 204))

    def _ntp(self, request_id: int) -> None:
        self._deliver(NtpReply(self.env.now, request_id, self.env.now))

    def _timer(self, name: str, token: object) -> None:
        if self._timers.get(name) is token:
            del self._timers[name]
            self._deliver(TimerFired(self.env.now, name))

    def _channel_opened(self, token: object) -> None:
        if self._channel is token:
            self.channel_open = True
            self._deliver(ChannelOpened(self.env.now))
            for message in list(self.unacked.values()):
                self._down(message)

    def _installed(self, version: str) -> None:
        """A virtual device's flash: writing the verified image to its slot cannot fail."""
        self._deliver(ImageInstalled(self.env.now, version, True))

    def _received(self, message: dict[str, Any]) -> None:
        """A message from the device reached the region: an acknowledgement completes its
        command."""
        self.sent.append(message)
        if message.get("type") == ChannelMessageType.ACK:
            self.unacked.pop(message.get("command_id"), None)
            self.acked_at.setdefault(message.get("command_id"), self.env.now)

    def _in_pool(self, purpose: str, then: Callable[[], None]) -> None:
        """Half a round trip to the region, a turn in its pool, half a round trip back."""
        half = self.network.dm_rtt_s / 2
        work = self.service(purpose)

        def arrived() -> None:
            self.pool.submit(work).callbacks.append(lambda _e: self._after(half, then))

        self._after(half, arrived)

    def _dm_request(self, request: HttpRequest) -> None:
        def answered() -> None:
            status, body = self.respond(self.agent, request)
            if request.purpose == "diagnostics" and status == 201 and request.json is not None:
                self.unacked.pop(request.json.get("command_id"), None)  # the upload completes it
            self._deliver(HttpResponse(self.env.now, request.request_id, status, body))

        self._in_pool(request.purpose, answered)

    def _download(self, download: DownloadFile) -> None:
        status, data = self.files(self.agent, download)

        def transferred() -> None:
            self._deliver(DownloadDone(self.env.now, download.request_id, status, data))

        def answered() -> None:
            self._after(len(data) / self.network.dm_bytes_per_s, transferred)

        self._in_pool(download.purpose, answered)

    def _send(self, message: dict[str, Any]) -> None:
        """A message up the command channel: it reaches the region if the channel is open."""
        if not self.channel_open:
            return
        token = self._channel
        half = self.network.dm_rtt_s / 2
        work = self.service(str(message.get("type", "channel")))

        def arrived() -> None:
            if self._channel is token:
                self.pool.submit(work).callbacks.append(lambda _e: self._received(message))

        self._after(half, arrived)
