"""A thin client of one meeting region, for the command line, tests and features: REST over httpx,
trusting only the region's CA, and the WSS signaling socket (`Signal`, on the one signaling client
of `protocol.signaling_client`)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from protocol.signaling import PATH, Message, MessageType
from protocol.signaling_client import SignalingClient
from protocol.tls import client_context

PASSWORD = "correct horse battery staple"


class MeetingError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status}: {body.get('field')}: {body.get('reason')}")
        self.status = status
        self.body = body


class MeetingApi:
    def __init__(self, url: str, ca_file: Path | str, token: str | None = None) -> None:
        self.url = url
        self.ca_file = Path(ca_file)
        self.http = httpx.Client(base_url=url, verify=client_context(ca_file), timeout=30)
        self.token = token
        self.account_id: str | None = None
        self.enterprise_id: str | None = None
        self.display_name: str | None = None
        self.username: str | None = None
        self._members: list[MeetingApi] = []

    def __enter__(self) -> MeetingApi:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close this client and every member client made from it (an idle TLS keep-alive
        connection left open delays the server's shutdown)."""
        for member in self._members:
            member.close()
        self.http.close()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, headers=self.headers, **kwargs)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"reason": response.text}
            raise MeetingError(response.status_code, body)
        return (
            response.json()
            if response.headers.get("content-type", "").startswith("application/json")
            else response.content
        )

    # -- accounts ---------------------------------------------------------------------------

    def register_enterprise(
        self,
        name: str = "Example Corp",
        username: str | None = None,
        password: str = PASSWORD,
        contract_end: str | None = None,
        display_name: str = "Ada Admin",
    ) -> dict[str, Any]:
        username = username or f"admin-{secrets.token_hex(4)}@example.com"
        body = {
            "name": name,
            "contract_end": contract_end,
            "admin": {
                "username": username,
                "password": password,
                "first_name": "Ada",
                "last_name": "Admin",
                "display_name": display_name,
                "address": "1 Main Street",
                "company": name,
            },
        }
        result: dict[str, Any] = self.call("POST", "/v1/enterprises", json=body)
        self.login(username, password)
        return result

    def login(self, username: str, password: str = PASSWORD) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            "POST", "/v1/auth/login", json={"username": username, "password": password}
        )
        self.token = result["token"]
        self.username = username
        self.account_id = result["account_id"]
        self.enterprise_id = result["enterprise_id"]
        return result

    def create_account(
        self,
        display_name: str,
        role: str = "user",
        custom_role_id: str | None = None,
        password: str = PASSWORD,
    ) -> dict[str, Any]:
        username = f"{display_name.lower().replace(' ', '.')}-{secrets.token_hex(3)}@example.com"
        body: dict[str, Any] = {
            "username": username,
            "display_name": display_name,
            "password": password,
            "role": role,
        }
        if custom_role_id:
            body["custom_role_id"] = custom_role_id
        result: dict[str, Any] = self.call("POST", "/v1/accounts", json=body)
        return result

    def member(
        self, display_name: str, role: str = "user", custom_role_id: str | None = None
    ) -> MeetingApi:
        """A new account of this enterprise, logged in with its own client."""
        account = self.create_account(display_name, role, custom_role_id)
        other = MeetingApi(self.url, self.ca_file)
        other.login(account["username"])
        other.display_name = display_name
        self._members.append(other)
        return other

    def settings(self, **changes: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.call("PUT", "/v1/enterprise/settings", json=changes)
        return result

    def create_conference(self, title: str = "Standup", **options: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            "POST", "/v1/conferences", json={"title": title, **options}
        )
        return result

    def directory(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("GET", "/v1/conferences")
        return result

    def end(self, conference_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", f"/v1/conferences/{conference_id}/end")
        return result

    def signaling(self) -> Signal:
        assert self.token, "log in first"
        return Signal(self.url, self.ca_file, self.token)


class Signal(SignalingClient):
    """One signaling socket of a logged-in account, keeping every message it received (for tests
    and features): `async with api.signaling() as sig: await sig.send(...)`."""

    def __init__(
        self, url: str, ca_file: Path, token: str | None, *, resumable: bool = False
    ) -> None:
        super().__init__(
            url.replace("https://", "wss://") + PATH,
            ca_file,
            token=token,
            close_timeout=10,
            resumable=resumable,
        )
        self.uri = self.url
        self.ca_file = ca_file
        self.received: list[dict[str, Any]] = []

    async def __aenter__(self) -> Signal:
        await self.connect()
        await self.expect(MessageType.HELLO)
        return self

    async def send(self, message: Message | Mapping[str, Any]) -> None:
        """Send a typed message, or any JSON object as it is (to see how the server refuses it)."""
        await self.send_raw(message.encode() if isinstance(message, Message) else message)

    async def next(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """The next message, or None once the server closed the socket."""
        message = await self.receive(timeout)
        if message is not None:
            self.received.append(message)
        return message

    async def expect(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """Read until a message of this type arrives; fails on close or timeout."""
        while True:
            message = await self.next(timeout)
            if message is None:
                raise AssertionError(f"socket closed ({self.close_code}) while waiting for {kind}")
            if message["type"] == kind:
                return message

    async def closed(self, timeout: float = 10.0) -> int | None:
        """Read until the server closes the socket; returns the close code."""
        while await self.next(timeout) is not None:
            pass
        return self.close_code

    async def drain(self, quiet: float = 0.3) -> list[dict[str, Any]]:
        """Everything that arrives until the socket is quiet for `quiet` seconds."""
        got: list[dict[str, Any]] = []
        while True:
            try:
                message = await self.next(quiet)
            except TimeoutError:
                return got
            if message is None:
                return got
            got.append(message)

    def types(self) -> list[str]:
        return [m["type"] for m in self.received]
