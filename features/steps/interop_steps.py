"""Steps of features/interop.feature (MT-07): third-party SIP and H.323 systems against the interop
gateway of a live meeting region.

The meeting regions are the shared stack of features/steps/meeting_steps.py; the gateway is started
once per session in the stack's home (the local stack does not run one). Every Then step hands its
evidence to a registered check of `roomtrust.comply.checks.interop`, and the evidence (SIP responses
with their SDES keys redacted, H.225.0 messages, sockets, handshakes, TLS probe reports) is kept
with the scenario.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_bdd import given, parsers, then, when

from protocol.stack import Stack
from roomtrust.comply.checks import interop as checks
from roomtrust.comply.evidence import Evidence
from roomtrust.comply.fixtures import evidence
from roomtrust.comply.tlsprobe import probe
from roomtrust.harness.interop import GatewayProcess, start_gateway
from services.meeting.interop import h323, sip
from services.meeting.interop.client import (
    H323Caller,
    SipTlsCaller,
    listening_sockets,
    plain_sip_answer,
)

FIXTURES = (evidence,)  # made visible to the scenarios that import these steps
SIP_DEFAULT_PORT = 5060
_INLINE = re.compile(r"inline:[A-Za-z0-9+/=]+")


def run(mt: dict[str, Any], coro: Any) -> Any:
    return mt["loop"].run_until_complete(coro)


def _wait_for(predicate: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def _redacted(message: sip.SipRequest | sip.SipResponse) -> str:
    """A message for the evidence folder: SDES keys never leave the TLS connection."""
    return _INLINE.sub("inline:<redacted>", message.encode().decode("utf-8", "replace"))


@pytest.fixture(scope="session")
def interop_gateways() -> Iterator[dict[str, GatewayProcess]]:
    started: dict[str, GatewayProcess] = {}
    yield started
    for gateway in started.values():
        gateway.stop()


@given(
    parsers.parse('the interop gateway of region "{region}" is running'), target_fixture="gateway"
)
def gateway_running(
    stack: Stack, interop_gateways: dict[str, GatewayProcess], region: str
) -> GatewayProcess:
    key = f"{stack.home}:{region}"
    gateway = interop_gateways.get(key)
    if gateway is None or gateway.process.poll() is not None:
        gateway = interop_gateways[key] = start_gateway(stack.home, region)
    return gateway


@given(parsers.parse('"{person}" owns a conference for third-party systems'))
def owns_interop_conference(mt: dict[str, Any], person: str) -> None:
    mt["conference"] = mt["apis"][person].create_conference("Third-party room systems")


# -- SIP -------------------------------------------------------------------------------------------


def _sip_call(
    gateway: GatewayProcess, mt: dict[str, Any], evidence: Evidence, label: str, **options: Any
) -> None:
    conference_id = mt["conference"]["conference_id"]

    async def call() -> tuple[str | None, sip.SipResponse, list[str]]:
        caller = await SipTlsCaller(gateway.host, gateway.sip_port, gateway.ca_file).connect()
        assert caller.stream is not None
        invite = caller.invite(conference_id, **options)
        response = await caller.call(invite)
        if response.status == 200:
            await caller.hang_up(invite.uri)
        await caller.close()
        transcript = [_redacted(invite), *(_redacted(m) for m in caller.received)]
        return caller.stream.tls_version, response, transcript

    tls_version, response, transcript = run(mt, call())
    mt["tls_version"], mt["sip_response"] = tls_version, response
    evidence.write_text(f"sip-{label}.txt", "\n----\n".join(transcript))


@when("a SIP system calls the conference over TLS offering SRTP")
def sip_srtp(gateway: GatewayProcess, mt: dict[str, Any], evidence: Evidence) -> None:
    _sip_call(gateway, mt, evidence, "srtp")


@when("a SIP system calls the conference over TLS offering plain RTP")
def sip_plain_rtp(gateway: GatewayProcess, mt: dict[str, Any], evidence: Evidence) -> None:
    _sip_call(gateway, mt, evidence, "plain-rtp", proto="RTP/AVP", with_key=False)


@when(parsers.parse('a SIP system calls the conference with a "{scheme}:" Request-URI'))
def sip_scheme(
    gateway: GatewayProcess, mt: dict[str, Any], evidence: Evidence, scheme: str
) -> None:
    _sip_call(gateway, mt, evidence, f"scheme-{scheme}", scheme=scheme)


@when(parsers.parse('a SIP system calls the conference asking for transport "{transport}"'))
def sip_transport(
    gateway: GatewayProcess, mt: dict[str, Any], evidence: Evidence, transport: str
) -> None:
    _sip_call(gateway, mt, evidence, f"transport-{transport}", uri_params=f";transport={transport}")


@then("the call is answered with SRTP keys inside the TLS connection")
def answered_with_srtp(mt: dict[str, Any]) -> None:
    checks.sip_call_answered_with_srtp(mt["tls_version"], mt["sip_response"])


@then(parsers.parse("the call is refused with {status:d}"))
def refused_with(mt: dict[str, Any], status: int) -> None:
    checks.sip_call_refused(mt["sip_response"], status)


@then(parsers.parse('the conference\'s call record has an encrypted "{transport}" leg'))
def encrypted_leg(mt: dict[str, Any], evidence: Evidence, transport: str) -> None:
    conference_id = mt["conference"]["conference_id"]

    def legs() -> list[dict[str, Any]]:
        records = mt["admin"].call("GET", "/v1/statistics/cdr")
        found = [leg for r in records if r["conference_id"] == conference_id for leg in r["legs"]]
        return found if any(leg["transport"] == transport for leg in found) else []

    found = _wait_for(legs)
    evidence.write_json(f"cdr-legs-{transport}.json", found)
    checks.encrypted_leg(found, transport)


# -- listeners and TLS -----------------------------------------------------------------------------


@then("the gateway process listens on its SIP TLS and H.323 TLS ports only")
def only_tls_listeners(gateway: GatewayProcess, evidence: Evidence) -> None:
    def idle() -> list[Any]:  # media sockets of calls that just ended close within moments
        found = listening_sockets(gateway.pid)
        return found if all(s.kind == "tcp" for s in found) else []

    sockets = _wait_for(idle) or listening_sockets(gateway.pid)
    evidence.write_json("sockets.json", [vars(s) for s in sockets])
    checks.only_tls_listeners(sockets, [gateway.sip_port, gateway.h323_port])


@then("plaintext SIP over TCP and UDP gets no SIP answer from the gateway")
def no_plain_sip(gateway: GatewayProcess, evidence: Evidence) -> None:
    answers = {
        f"{transport} {gateway.host}:{port}": plain_sip_answer(gateway.host, port, transport)
        for port in (gateway.sip_port, gateway.h323_port, SIP_DEFAULT_PORT)
        for transport in ("TCP", "UDP")
    }
    evidence.write_json("plain-sip-probes.json", answers)
    checks.no_plain_sip_answer(answers)


@then("both ports refuse TLS 1.1 and negotiate TLS 1.2")
def tls_versions(gateway: GatewayProcess, mt: dict[str, Any], evidence: Evidence) -> None:
    async def version(port: int, maximum: ssl.TLSVersion) -> str | None:
        caller = SipTlsCaller(gateway.host, port, gateway.ca_file)
        try:
            await caller.connect(maximum=maximum)
        except (ssl.SSLError, ConnectionError):
            return None
        assert caller.stream is not None
        negotiated = caller.stream.tls_version
        await caller.close()
        return negotiated

    handshakes = {
        f"port {port}": {
            "TLSv1.1": run(mt, version(port, ssl.TLSVersion.TLSv1_1)),
            "TLSv1.2": run(mt, version(port, ssl.TLSVersion.TLSv1_2)),
        }
        for port in (gateway.sip_port, gateway.h323_port)
    }
    reports = [probe(gateway.host, p).to_dict() for p in (gateway.sip_port, gateway.h323_port)]
    evidence.write_json("tls-handshakes.json", {"handshakes": handshakes, "probe": reports})
    checks.tls_below_1_2_refused(handshakes)


# -- H.323 -----------------------------------------------------------------------------------------


async def _h323_call(
    gateway: GatewayProcess, destination: str, **options: Any
) -> tuple[H323Caller, h323.H225]:
    caller = await H323Caller(gateway.host, gateway.h323_port, gateway.ca_file).connect()
    await caller.send(caller.setup(destination, **options))
    answer = await caller.answer()
    return caller, answer


@when("an H.323 system calls the conference without H.235")
def h323_plain(gateway: GatewayProcess, mt: dict[str, Any], evidence: Evidence) -> None:
    async def call() -> h323.H225:
        caller, answer = await _h323_call(
            gateway,
            mt["conference"]["conference_id"],
            tokens=[],
            channels=[h323.plain_audio("127.0.0.1", 40002)],
        )
        await caller.close()
        return answer

    mt["h323_answer"] = answer = run(mt, call())
    evidence.write_json("h323-without-h235.json", {"name": answer.name, "body": answer.body})


@when("an H.323 system calls the conference with H.235.6 and encrypted media")
def h323_secure(gateway: GatewayProcess, mt: dict[str, Any], evidence: Evidence) -> None:
    async def call() -> tuple[h323.H225, dict[str, Any], bool]:
        caller, answer = await _h323_call(gateway, mt["conference"]["conference_id"])
        keys: dict[str, Any] = {}
        others_open = False
        if answer.name == "connect":
            keys = caller.media_keys(answer)
            eavesdropper = H323Caller(gateway.host, gateway.h323_port, gateway.ca_file)
            eavesdropper.call_identifier = caller.call_identifier
            try:
                eavesdropper.media_keys(answer)
                others_open = True
            except h323.H323Error:
                others_open = False
            await caller.send(h323.release_complete(answer, "undefinedReason"))
        await caller.close()
        return answer, keys, others_open

    answer, keys, others_open = run(mt, call())
    mt["h323_answer"], mt["h323_keys"], mt["h323_others_open"] = answer, keys, others_open
    wrapped = json.loads(json.dumps(answer.body))
    for channel in wrapped.get("fastStart", []):
        if isinstance(channel, dict) and "encryptionSync" in channel:
            channel["encryptionSync"] = "<wrapped media key redacted>"
    evidence.write_json(
        "h323-with-h235.json",
        {
            "name": answer.name,
            "keys_opened": sorted(keys),
            "others_open": others_open,
            "body": wrapped,
        },
    )


@then(parsers.parse('the call is released with reason "{reason}"'))
def released(mt: dict[str, Any], reason: str) -> None:
    checks.h323_released(mt["h323_answer"], reason)


@then("the call is connected with media keys only the caller can open")
def connected(mt: dict[str, Any]) -> None:
    checks.h323_connected_with_caller_keys(
        mt["h323_answer"], mt["h323_keys"], mt["h323_others_open"]
    )
