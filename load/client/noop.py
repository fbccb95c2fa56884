"""A network that answers every request at once, in process: the no-op target of the client bench.

Enrollment gets a 201 with a certificate of nothing, every other request a 200; a socket accepts
what is sent and delivers nothing. No byte leaves the process, so what is measured is the client
itself: the sans-IO agent, the driver and Locust's request events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from load.client.driver import Reply, TlsIdentity

_ENROLLED = {"device_id": "noop", "certificate_pem": "", "ca_pem": ""}
_HEARTBEAT = {"next_heartbeat_s": 30}
_OK: dict[str, Any] = {}


def _reply(url: str) -> Reply:
    if url.endswith("/v1/enroll"):
        return Reply(201, _ENROLLED, 0)
    if url.endswith("/heartbeat"):
        return Reply(200, _HEARTBEAT, 0)
    return Reply(200, _OK, 0)


class _NoopSocket:
    def send(self, text: str) -> None:
        return None

    def close(self, code: int = 1000) -> None:
        return None


class NoopNetwork:
    def __init__(self) -> None:
        self.requests = 0
        self._replies: dict[str, Reply] = {}

    def http(
        self, method: str, url: str, body: Any, *, tls: TlsIdentity | None, bearer: str | None
    ) -> Reply:
        self.requests += 1
        reply = self._replies.get(url)
        if reply is None:
            reply = self._replies[url] = _reply(url)
        return reply

    def websocket(
        self,
        url: str,
        *,
        tls: TlsIdentity | None,
        bearer: str | None,
        on_message: Callable[[str], None],
        on_close: Callable[[int], None],
    ) -> _NoopSocket:
        return _NoopSocket()

    def forget(self, tls: TlsIdentity) -> None:
        return None
