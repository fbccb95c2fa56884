"""The interop gateway's SIP parser and framer (RFC 3261), without I/O."""

from __future__ import annotations

import pytest

from services.meeting.interop import sip

INVITE = (
    b"INVITE sips:sa-0123456789abcdef@gw.example;transport=tls SIP/2.0\r\n"
    b"v: SIP/2.0/TLS 10.0.0.1:5061;branch=z9hG4bKa1, SIP/2.0/TLS proxy.example;branch=z9hG4bKb2\r\n"
    b"Max-Forwards: 70\r\n"
    b'f: "Room, \\"Twelve\\"" <sips:room12@example.com>;tag=abc\r\n'
    b"t: sips:sa-0123456789abcdef@gw.example\r\n"
    b"i: 1234@example.com\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"m: <sips:room12@10.0.0.1:5061;transport=tls>\r\n"
    b"Subject: a folded\r\n"
    b"   header line\r\n"
    b"c: application/sdp\r\n"
    b"l: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def test_a_request_with_compact_headers_folding_and_lists_parses() -> None:
    request = sip.parse_message(INVITE)
    assert isinstance(request, sip.SipRequest)
    assert request.method == "INVITE"
    uri = request.request_uri
    assert (uri.scheme, uri.user, uri.host, uri.port, uri.transport) == (
        "sips",
        "sa-0123456789abcdef",
        "gw.example",
        None,
        "tls",
    )
    assert [v.host for v in request.vias] == ["10.0.0.1", "proxy.example"]
    assert request.vias[0].transport == "TLS" and request.vias[0].branch == "z9hG4bKa1"
    assert request.from_.display == 'Room, "Twelve"' and request.from_.tag == "abc"
    assert request.to.tag is None and request.to.uri.user == "sa-0123456789abcdef"
    assert request.call_id == "1234@example.com"
    assert request.cseq == sip.CSeq(7, "INVITE")
    assert request.header("subject") == "a folded header line"
    assert request.header("CONTENT-TYPE") == "application/sdp"
    assert request.body == b"v=0\n"


def test_encode_then_parse_round_trips() -> None:
    request = sip.parse_message(INVITE)
    again = sip.parse_message(request.encode())
    assert isinstance(again, sip.SipRequest)
    assert list(again.headers) == list(request.headers)
    assert again.body == request.body and again.uri == request.uri


def test_a_status_line_parses_as_a_response() -> None:
    response = sip.parse_message(b"SIP/2.0 488 Not Acceptable Here\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(response, sip.SipResponse)
    assert (response.status, response.reason) == (488, "Not Acceptable Here")


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@example.com",
        "sips:alice@[2001:db8::1]:5061;transport=tls",
        "sips:sa-1*pa%2Ass@127.0.0.1:5061;maddr=10.0.0.1;lr?subject=x",
    ],
)
def test_uris_round_trip(text: str) -> None:
    assert str(sip.SipUri.parse(text)) == text


def test_uri_user_part_is_percent_decoded_and_passwords_dropped() -> None:
    uri = sip.SipUri.parse("sips:sa-1*pa%2Ass:secret@host")
    assert uri.user_text == "sa-1*pa*ss"
    assert "secret" not in str(uri)


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("tel:+15551234", 416),
        ("http://example.com", 416),
        ("sips:", 400),
        ("sips:alice@exa mple.com", 400),
        ("sips:alice@host:99999", 400),
        ("sips:@host", 400),
        ("sips:host;=x", 400),
        ("nocolon", 400),
    ],
)
def test_bad_uris_are_refused_with_their_status(text: str, status: int) -> None:
    with pytest.raises(sip.SipError) as caught:
        sip.SipUri.parse(text)
    assert caught.value.status == status


def test_name_addr_forms() -> None:
    bare = sip.NameAddr.parse("sips:bob@example.com;tag=9")
    assert bare.tag == "9" and bare.uri.params == ()  # bare form: the parameter is the header's
    angled = sip.NameAddr.parse("<sips:bob@example.com;transport=tls>;tag=9")
    assert angled.uri.transport == "tls" and angled.tag == "9"
    assert str(angled.with_param("tag", "10")) == "<sips:bob@example.com;transport=tls>;tag=10"
    with pytest.raises(sip.SipError):
        sip.NameAddr.parse('"unterminated <sips:bob@example.com>')
    with pytest.raises(sip.SipError):
        sip.NameAddr.parse("<sips:bob@example.com")


@pytest.mark.parametrize(
    "data",
    [
        b"INVITE sips:a@b SIP/3.0\r\nContent-Length: 0\r\n\r\n",
        b"INVITE  SIP/2.0\r\nContent-Length: 0\r\n\r\n",
        b"INVITE sips:a@b SIP/2.0\r\nno colon here\r\nContent-Length: 0\r\n\r\n",
        b"INVITE sips:a@b SIP/2.0\r\nContent-Length: 5\r\n\r\nabc",
        b"INVITE sips:a@b SIP/2.0\r\nContent-Length: 0\r\n",
        b"\xff\xfe SIP/2.0\r\nContent-Length: 0\r\n\r\n",
    ],
)
def test_malformed_messages_are_refused(data: bytes) -> None:
    with pytest.raises(sip.SipError):
        sip.parse_message(data)


@pytest.mark.parametrize(
    ("value", "valid"),
    [("1 INVITE", True), ("INVITE", False), ("x INVITE", False), ("2147483648 BYE", False)],
)
def test_cseq(value: str, valid: bool) -> None:
    if valid:
        assert sip.CSeq.parse(value).number == 1
    else:
        with pytest.raises(sip.SipError):
            sip.CSeq.parse(value)


def test_missing_and_duplicate_mandatory_headers_are_errors() -> None:
    request = sip.parse_message(b"OPTIONS sips:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(sip.SipError, match="missing Call-ID"):
        request.call_id  # noqa: B018
    twice = sip.parse_message(
        b"OPTIONS sips:a@b SIP/2.0\r\nCall-ID: 1\r\ni: 2\r\nContent-Length: 0\r\n\r\n"
    )
    with pytest.raises(sip.SipError, match="more than one"):
        twice.call_id  # noqa: B018


def test_the_stream_frames_by_content_length_across_reads() -> None:
    stream = sip.SipStream()
    two = INVITE + b"\r\n\r\n" + INVITE
    out: list[sip.Framed] = []
    for i in range(0, len(two), 7):  # arrives in small pieces
        out += stream.feed(two[i : i + 7])
    assert [type(x).__name__ for x in out] == ["SipRequest", "KeepAlive", "SipRequest"]


def test_stray_crlf_before_a_message_is_skipped() -> None:
    out = sip.SipStream().feed(b"\r\n" + INVITE)
    assert [type(x).__name__ for x in out] == ["SipRequest"]


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"OPTIONS sips:a@b SIP/2.0\r\nCall-ID: 1\r\n\r\n", 400),  # no Content-Length on a stream
        (b"OPTIONS sips:a@b SIP/2.0\r\nContent-Length: 99999999\r\n\r\n", 513),
        (b"OPTIONS sips:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab", 400),
        (b"OPTIONS sips:a@b SIP/2.0\r\nX: " + b"a" * 20000, 513),
    ],
)
def test_framing_errors_are_fatal(data: bytes, status: int) -> None:
    stream = sip.SipStream()
    out = stream.feed(data)
    assert len(out) == 1 and isinstance(out[0], sip.SipError)
    assert out[0].fatal and out[0].status == status
    assert stream.feed(INVITE) == []  # nothing more is read from a broken stream


def test_a_framed_but_bad_message_is_reported_and_the_stream_goes_on() -> None:
    stream = sip.SipStream()
    out = stream.feed(b"BAD LINE\r\nContent-Length: 0\r\n\r\n" + INVITE)
    assert isinstance(out[0], sip.SipError) and not out[0].fatal
    assert isinstance(out[1], sip.SipRequest)


def test_a_response_copies_the_dialog_headers_and_adds_a_to_tag() -> None:
    request = sip.parse_message(INVITE)
    assert isinstance(request, sip.SipRequest)
    response = sip.response_to(request, 488, to_tag="gw1", extra=[sip.warning(302, "gw", 'no "x"')])
    assert response.headers.values("Via") == request.headers.values("Via")
    assert response.to.tag == "gw1"
    assert response.header("Warning") == "302 gw \"no 'x'\""
    trying = sip.response_to(request, 100, to_tag="gw1")
    assert trying.to.tag is None  # never on 100 Trying
    assert sip.parse_message(response.encode()).header("Content-Length") == "0"


def test_header_values_cannot_smuggle_lines() -> None:
    with pytest.raises(ValueError):
        sip.Headers().add("Subject", "x\r\nVia: SIP/2.0/UDP evil")
