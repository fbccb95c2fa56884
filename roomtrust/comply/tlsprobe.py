"""A TLS probe built on the standard `ssl` module (DM-11, IN-02, MT-06, MT-10).

For one endpoint it attempts a handshake per protocol version (TLS 1.0, 1.1, 1.2, 1.3) and, for
TLS 1.2, per cipher family (ECDHE with AEAD, CBC without AEAD, static RSA key exchange, DHE key
exchange, anonymous). The client side is opened up with `@SECLEVEL=0`, otherwise the local OpenSSL
would refuse TLS 1.0/1.1 on its own and the probe would pass without the server having been asked.

The policy: TLS 1.0 and 1.1 refused, TLS 1.2 accepted with ECDHE+AEAD suites and with nothing
else. A weak attempt that this client cannot even offer is a finding too, never a silent pass.
"""

from __future__ import annotations

import socket
import ssl
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

ACCEPTED, REFUSED, ERROR, NOT_OFFERED = "accepted", "refused", "error", "not offered"
OPEN_CIPHERS = "ALL:@SECLEVEL=0"


@dataclass(frozen=True)
class Attempt:
    label: str
    version: ssl.TLSVersion
    ciphers: str | None  # an OpenSSL cipher list for TLS <= 1.2; None for TLS 1.3
    weak: bool  # accepting it is a finding; refusing a strong one is a finding too


@dataclass
class AttemptResult:
    label: str
    version: str
    weak: bool
    outcome: str
    cipher: str | None = None
    detail: str = ""


@dataclass
class ProbeReport:
    host: str
    port: int
    name: str
    results: list[AttemptResult] = field(default_factory=list)

    def result(self, label: str) -> AttemptResult:
        for item in self.results:
            if item.label == label:
                return item
        raise KeyError(label)

    def accepts_version(self, version: str) -> bool:
        """True when any attempt at that protocol version was accepted."""
        return any(r.version == version and r.outcome == ACCEPTED for r in self.results)

    def findings(self) -> list[str]:
        """Every reason this endpoint fails the policy; empty means it passes."""
        found = []
        for r in self.results:
            if r.outcome == ERROR:
                found.append(f"{r.label}: probe error ({r.detail})")
            elif r.weak and r.outcome == ACCEPTED:
                found.append(f"{r.label}: accepted ({r.cipher})")
            elif r.weak and r.outcome == NOT_OFFERED and r.label in _MANDATORY_WEAK:
                found.append(f"{r.label}: this client cannot offer it, so it is untested")
            elif not r.weak and r.label in _REQUIRED and r.outcome != ACCEPTED:
                found.append(f"{r.label}: not accepted ({r.detail or r.outcome})")
        return found

    @property
    def strong(self) -> bool:
        return not self.findings()

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.name,
            "host": self.host,
            "port": self.port,
            "verdict": "strong" if self.strong else "weak",
            "findings": self.findings(),
            "attempts": [asdict(r) for r in self.results],
        }


def _families() -> list[tuple[str, list[str]]]:
    """TLS 1.2 cipher families, each with the suite names this OpenSSL can offer for it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers(OPEN_CIPHERS)
    suites = [c for c in ctx.get_ciphers() if c["protocol"] != "TLSv1.3" and "psk" not in c["kea"]]
    families: list[tuple[str, list[str]]] = [
        (
            "TLS 1.2 ECDHE AEAD",
            [
                c["name"]
                for c in suites
                if c["kea"] == "kx-ecdhe" and c["aead"] and c["auth"] != "auth-null"
            ],
        ),
        ("TLS 1.2 CBC (no AEAD)", [c["name"] for c in suites if not c["aead"]]),
        ("TLS 1.2 static RSA key exchange", [c["name"] for c in suites if c["kea"] == "kx-rsa"]),
        (
            "TLS 1.2 DHE key exchange",
            [c["name"] for c in suites if c["kea"] == "kx-dhe" and c["auth"] != "auth-null"],
        ),
        ("TLS 1.2 anonymous", [c["name"] for c in suites if c["auth"] == "auth-null"]),
    ]
    return families


def attempts() -> list[Attempt]:
    """Every handshake the probe tries, weakest protocol first."""
    plan = [
        Attempt("TLS 1.0", ssl.TLSVersion.TLSv1, OPEN_CIPHERS, weak=True),
        Attempt("TLS 1.1", ssl.TLSVersion.TLSv1_1, OPEN_CIPHERS, weak=True),
    ]
    for label, names in _families():
        ciphers = ":".join(names) + ":@SECLEVEL=0" if names else ""
        plan.append(Attempt(label, ssl.TLSVersion.TLSv1_2, ciphers, weak=label not in _REQUIRED))
    plan.append(Attempt("TLS 1.3", ssl.TLSVersion.TLSv1_3, None, weak=False))
    return plan


_REQUIRED = {"TLS 1.2 ECDHE AEAD"}
_MANDATORY_WEAK = {"TLS 1.0", "TLS 1.1", "TLS 1.2 CBC (no AEAD)"}
_VERSION_NAMES = {
    ssl.TLSVersion.TLSv1: "TLSv1",
    ssl.TLSVersion.TLSv1_1: "TLSv1.1",
    ssl.TLSVersion.TLSv1_2: "TLSv1.2",
    ssl.TLSVersion.TLSv1_3: "TLSv1.3",
}


def _client(attempt: Attempt) -> ssl.SSLContext | None:
    """A client context offering exactly this attempt, or None when this OpenSSL cannot."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the probe judges protocols, not the certificate chain
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = attempt.version
            ctx.maximum_version = attempt.version
        if attempt.ciphers is not None:
            if not attempt.ciphers:
                return None
            ctx.set_ciphers(attempt.ciphers)
    except (ssl.SSLError, ValueError):
        return None
    return ctx


def _handshake(host: str, port: int, attempt: Attempt, timeout: float) -> AttemptResult:
    version = _VERSION_NAMES[attempt.version]
    ctx = _client(attempt)
    if ctx is None:
        return AttemptResult(attempt.label, version, attempt.weak, NOT_OFFERED)
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return AttemptResult(attempt.label, version, attempt.weak, ERROR, detail=str(exc))
    try:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            cipher = tls.cipher()
            name = cipher[0] if cipher else None
            return AttemptResult(
                attempt.label, tls.version() or version, attempt.weak, ACCEPTED, name
            )
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        return AttemptResult(attempt.label, version, attempt.weak, REFUSED, detail=reason)
    except (ConnectionError, EOFError) as exc:
        # the server hung up mid-handshake: a refusal without an alert
        return AttemptResult(attempt.label, version, attempt.weak, REFUSED, detail=repr(exc))
    except OSError as exc:
        return AttemptResult(attempt.label, version, attempt.weak, ERROR, detail=str(exc))
    finally:
        raw.close()


def probe(host: str, port: int, name: str = "", timeout: float = 5.0) -> ProbeReport:
    """Attempt every handshake against one endpoint."""
    report = ProbeReport(host, port, name or f"{host}:{port}")
    for attempt in attempts():
        report.results.append(_handshake(host, port, attempt, timeout))
    return report
