"""The SimPy driver of the sans-IO DeviceAgent: the agent's actions become simulated delays.

An HTTP request to the DM service costs half a round trip, a turn in the region's server pool
(`sim.service.ServerPool`, with the endpoint's service time) and the other half; a connectivity check or NTP query costs one round
trip to the internet; a timer is a SimPy timeout. Answers go back into the agent as events. The
driver lives only for an episode (boot and enrollment, say): afterwards the device's steady state
belongs to a cohort (`sim.cohort`), not to a process of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from functools import partial
from typing import Any

import simpy

from devices_virtual.agent import (
    CancelTimer,
    ChannelOpened,
    DeviceAgent,
    HttpRequest,
    HttpResponse,
    NtpQuery,
    NtpReply,
    OpenChannel,
    StartTimer,
    StoreCredential,
    TimerFired,
)
from devices_virtual.agent.events import Event, PowerOn
from sim.service import ServerPool

Responder = Callable[[DeviceAgent, HttpRequest], tuple[int, Any]]


@dataclass
class Network:
    """Round trips in seconds: to the device's DM region, and to the internet at large."""

    dm_rtt_s: float
    internet_rtt_s: float = 0.03


def dm_answer(deployed: bool) -> Responder:
    """The DM service's answers as the simulator needs them: enrollment succeeds for a deployed
    device (403 otherwise), every session request is accepted."""

    def answer(agent: DeviceAgent, request: HttpRequest) -> tuple[int, Any]:
        if request.purpose == "enroll":
            if not deployed:
                return 403, {"reason": "not deployed"}
            device_id = f"dev-{agent.identity.mac.replace(':', '')}"
            return 201, {"device_id": device_id, "certificate_pem": "", "ca_pem": ""}
        return 200, {}

    return answer


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
    ) -> None:
        self.env, self.agent, self.pool, self.network = env, agent, pool, network
        self.service = service
        self.respond, self.done = respond, done
        self._inbox: list[Event] = []
        self._wake: simpy.Event | None = None
        self._timers: dict[str, object] = {}
        self.closed = False
        self.requests = 0
        self.enrolled_at: float | None = None

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

    # -- actions -> delays ---------------------------------------------------------------------

    def _deliver(self, event: Event) -> None:
        if self.closed:
            return
        self._inbox.append(event)
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _after(self, delay: float, then: Callable[[], None]) -> None:
        self.env.timeout(delay).callbacks.append(lambda _e: then())

    def _perform(self, actions: list[Any]) -> None:
        env = self.env
        for action in actions:
            if isinstance(action, HttpRequest):
                self.requests += 1
                if action.target == "dm":
                    self._dm_request(action)
                else:
                    self._after(
                        self.network.internet_rtt_s, partial(self._answer, action.request_id)
                    )
            elif isinstance(action, NtpQuery):
                self._after(self.network.internet_rtt_s, partial(self._ntp, action.request_id))
            elif isinstance(action, StartTimer):
                token = object()
                self._timers[action.name] = token
                self._after(max(0.0, action.at - env.now), partial(self._timer, action.name, token))
            elif isinstance(action, CancelTimer):
                self._timers.pop(action.name, None)
            elif isinstance(action, OpenChannel):
                self._after(self.network.dm_rtt_s, lambda: self._deliver(ChannelOpened(env.now)))
            elif isinstance(action, StoreCredential):
                self.enrolled_at = env.now
            # Other actions (close session, forget credential, reboot) take no simulated time.

    def _answer(self, request_id: int) -> None:
        """A preconfigured domain (connectivity check) answers: 204 No Content."""
        self._deliver(HttpResponse(self.env.now, request_id, 204))

    def _ntp(self, request_id: int) -> None:
        self._deliver(NtpReply(self.env.now, request_id, self.env.now))

    def _timer(self, name: str, token: object) -> None:
        if self._timers.get(name) is token:
            del self._timers[name]
            self._deliver(TimerFired(self.env.now, name))

    def _dm_request(self, request: HttpRequest) -> None:
        half = self.network.dm_rtt_s / 2
        work = self.service(request.purpose)

        def arrived() -> None:
            self.pool.submit(work).callbacks.append(lambda _e: self._after(half, answered))

        def answered() -> None:
            status, body = self.respond(self.agent, request)
            self._deliver(HttpResponse(self.env.now, request.request_id, status, body))

        self._after(half, arrived)
