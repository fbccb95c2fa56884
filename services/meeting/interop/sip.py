"""SIP messages, sans-IO (RFC 3261): parse and build requests and responses, URIs and name-addrs,
and frame them on a stream transport (TLS here).

Only what a gateway that answers calls needs is covered, but that part follows the grammar: request
and status lines, header names in full and compact form and in any case, folded header lines,
comma-separated header values (not split inside quotes or angle brackets), `sip:`/`sips:` URIs with
user, host (IPv4, IPv6 reference or name), port, parameters and headers, name-addrs with display
names and header parameters, Via with its transport, and CSeq.

On a stream, RFC 3261 section 18.3 makes Content-Length mandatory: a message without one, or with a
head or body over the limits, loses the framing and is fatal to the connection. CRLFs before a
start line are skipped (section 7.5), and a CRLFCRLF keep-alive ping (RFC 5626) is reported so the
driver can answer it with a CRLF pong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from urllib.parse import unquote

SIP_VERSION = "SIP/2.0"
MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
CRLF = "\r\n"

COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "r": "Refer-To",
    "u": "Allow-Events",
}
CANONICAL = {
    name.lower(): name
    for name in (
        "Accept",
        "Accept-Encoding",
        "Allow",
        "Call-ID",
        "Contact",
        "Content-Encoding",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "From",
        "Max-Forwards",
        "Proxy-Require",
        "Record-Route",
        "Require",
        "Route",
        "Server",
        "Supported",
        "To",
        "Unsupported",
        "User-Agent",
        "Via",
        "Warning",
        "WWW-Authenticate",
    )
}
# Headers whose values may be comma-separated lists of several values (RFC 3261 section 7.3.1).
LIST_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "allow",
        "contact",
        "proxy-require",
        "record-route",
        "require",
        "route",
        "supported",
        "unsupported",
        "via",
        "warning",
    }
)

REASONS = {
    100: "Trying",
    180: "Ringing",
    182: "Queued",
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    481: "Call/Transaction Does Not Exist",
    483: "Too Many Hops",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    513: "Message Too Large",
    603: "Decline",
}

_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)$")
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6][0-9]{2})(?: (.*))?$")
_VIA = re.compile(r"^SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9-]+)\s+(\S+?)\s*(?:;(.*))?$", re.DOTALL)


class SipError(ValueError):
    """A message that does not parse; `status` is the response it deserves if it can be answered,
    and `fatal` says the stream framing is lost (the connection must close)."""

    def __init__(self, reason: str, status: int = 400, fatal: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.fatal = fatal


Params = tuple[tuple[str, str | None], ...]


def _params(text: str) -> Params:
    out: list[tuple[str, str | None]] = []
    for part in split_outside_quotes(text, ";"):
        part = part.strip()
        if not part:
            raise SipError(f"empty parameter in {text!r}")
        name, eq, value = part.partition("=")
        name = name.strip()
        if not _TOKEN.match(name):
            raise SipError(f"bad parameter name {name!r}")
        out.append((name.lower(), value.strip() if eq else None))
    return tuple(out)


def _param(params: Params, name: str) -> str | None:
    for key, value in params:
        if key == name:
            return value if value is not None else ""
    return None


def _format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split on `separator` except inside double quotes (with backslash escapes) or <...>."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    angle = 0
    for ch in text:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            angle += 1
        elif not quoted and ch == ">":
            angle = max(0, angle - 1)
        elif not quoted and angle == 0 and ch == separator:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    if quoted:
        raise SipError(f"unterminated quoted string in {text!r}")
    parts.append("".join(current))
    return parts


# -- URIs and addresses ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SipUri:
    """A `sip:` or `sips:` URI (RFC 3261 section 19.1)."""

    scheme: str
    host: str
    user: str | None = None
    port: int | None = None
    params: Params = ()
    headers: str = ""

    @classmethod
    def parse(cls, text: str) -> SipUri:
        text = text.strip()
        scheme, colon, rest = text.partition(":")
        scheme = scheme.lower()
        if not colon or not scheme or not re.match(r"^[a-z][a-z0-9+.-]*$", scheme):
            raise SipError(f"not a URI: {text!r}")
        if scheme not in ("sip", "sips"):
            raise SipError(f"not a SIP URI: {scheme}:", status=416)
        rest, _, headers = rest.partition("?")
        user: str | None = None
        if "@" in rest:
            userinfo, _, rest = rest.partition("@")
            user = userinfo.partition(":")[0]  # a password in the URI is ignored (deprecated)
            if not user:
                raise SipError(f"empty user part in {text!r}")
        hostport, _, param_text = rest.partition(";")
        params = _params(param_text) if param_text else ()
        host, port = _hostport(hostport)
        return cls(scheme, host, user, port, params, headers)

    def param(self, name: str) -> str | None:
        return _param(self.params, name.lower())

    @property
    def transport(self) -> str | None:
        value = self.param("transport")
        return value.lower() if value is not None else None

    @property
    def user_text(self) -> str | None:
        """The user part with its %-escapes decoded."""
        return unquote(self.user) if self.user is not None else None

    def __str__(self) -> str:
        host = f"{self.host}:{self.port}" if self.port is not None else self.host
        user = f"{self.user}@" if self.user is not None else ""
        headers = f"?{self.headers}" if self.headers else ""
        return f"{self.scheme}:{user}{host}{_format_params(self.params)}{headers}"


def _hostport(text: str) -> tuple[str, int | None]:
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipError(f"bad IPv6 reference {text!r}")
        host, rest = text[: end + 1], text[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else None
        if rest and port_text is None:
            raise SipError(f"bad host {text!r}")
    else:
        host, colon, port_text_raw = text.partition(":")
        port_text = port_text_raw if colon else None
    if not _HOST.match(host):
        raise SipError(f"bad host {host!r}")
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise SipError(f"bad port {port_text!r}")
        port = int(port_text)
    return host.lower(), port


@dataclass(frozen=True)
class NameAddr:
    """From, To and Contact values: `"Name" <uri>;tag=x` or a bare `uri;tag=x` (section 20.10)."""

    uri: SipUri
    display: str | None = None
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip()
        if "<" in text:
            lt = _angle_start(text)
            gt = text.find(">", lt)
            if gt < 0:
                raise SipError(f"unterminated <...> in {text!r}")
            display = text[:lt].strip() or None
            if display is not None and display.startswith('"'):
                if not display.endswith('"') or len(display) < 2:
                    raise SipError(f"bad display name {display!r}")
                display = re.sub(r"\\(.)", r"\1", display[1:-1])
            uri = SipUri.parse(text[lt + 1 : gt])
            rest = text[gt + 1 :].strip()
            if rest and not rest.startswith(";"):
                raise SipError(f"unexpected text after > in {text!r}")
            return cls(uri, display, _params(rest[1:]) if rest else ())
        uri_text, _, param_text = text.partition(";")  # bare form: parameters are the header's
        if "?" in uri_text or "," in uri_text:
            raise SipError(f"a URI with ? or , must be in <...>: {text!r}")
        return cls(SipUri.parse(uri_text), None, _params(param_text) if param_text else ())

    def param(self, name: str) -> str | None:
        return _param(self.params, name.lower())

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    def with_param(self, name: str, value: str) -> NameAddr:
        kept = tuple((k, v) for k, v in self.params if k != name)
        return replace(self, params=(*kept, (name, value)))

    def __str__(self) -> str:
        display = ""
        if self.display is not None:
            escaped = self.display.replace("\\", "\\\\").replace('"', '\\"')
            display = f'"{escaped}" '
        return f"{display}<{self.uri}>{_format_params(self.params)}"


def _angle_start(text: str) -> int:
    quoted = escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "<" and not quoted:
            return i
    raise SipError(f"no <uri> in {text!r}")


@dataclass(frozen=True)
class Via:
    transport: str
    host: str
    port: int | None
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> Via:
        match = _VIA.match(text.strip())
        if match is None:
            raise SipError(f"bad Via {text!r}")
        host, port = _hostport(match.group(2))
        params = _params(match.group(3)) if match.group(3) else ()
        return cls(match.group(1).upper(), host, port, params)

    @property
    def branch(self) -> str | None:
        return _param(self.params, "branch")

    def __str__(self) -> str:
        host = f"{self.host}:{self.port}" if self.port is not None else self.host
        return f"SIP/2.0/{self.transport} {host}{_format_params(self.params)}"


@dataclass(frozen=True)
class CSeq:
    number: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit() or not _TOKEN.match(parts[1]):
            raise SipError(f"bad CSeq {text!r}")
        number = int(parts[0])
        if number >= 2**31:
            raise SipError("CSeq number must be below 2**31")
        return cls(number, parts[1].upper())

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


# -- messages --------------------------------------------------------------------------------------


def canonical_name(name: str) -> str:
    """The full, conventionally spelt name of a header given in any case or in compact form."""
    lower = name.lower()
    if lower in COMPACT:
        return COMPACT[lower]
    return CANONICAL.get(lower, name)


@dataclass
class Headers:
    """Header fields in order; look-ups ignore case and compact forms."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, value: str) -> None:
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError("header names and values hold no line breaks")
        self.items.append((canonical_name(name), value))

    def values(self, name: str) -> list[str]:
        """Every value of the header; list headers are split at their commas."""
        key = canonical_name(name).lower()
        out: list[str] = []
        for n, v in self.items:
            if n.lower() != key:
                continue
            if key in LIST_HEADERS:
                out += [p.strip() for p in split_outside_quotes(v, ",") if p.strip()]
            else:
                out.append(v)
        return out

    def get(self, name: str) -> str | None:
        found = self.values(name)
        return found[0] if found else None

    def count(self, name: str) -> int:
        key = canonical_name(name).lower()
        return sum(1 for n, _ in self.items if n.lower() == key)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)


@dataclass
class SipMessage:
    headers: Headers
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def _required(self, name: str) -> str:
        value = self.header(name)
        if value is None or not value.strip():
            raise SipError(f"missing {canonical_name(name)} header")
        if self.headers.count(name) > 1 and name.lower() not in LIST_HEADERS:
            raise SipError(f"more than one {canonical_name(name)} header")
        return value.strip()

    @property
    def call_id(self) -> str:
        return self._required("Call-ID")

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self._required("CSeq"))

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self._required("From"))

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(self._required("To"))

    @property
    def vias(self) -> list[Via]:
        values = self.headers.values("Via")
        if not values:
            raise SipError("missing Via header")
        return [Via.parse(v) for v in values]

    def _lines(self, start: str) -> bytes:
        lines = [start]
        lines += [f"{name}: {value}" for name, value in self.headers if name != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return (CRLF.join(lines) + CRLF + CRLF).encode("utf-8") + self.body


@dataclass
class SipRequest(SipMessage):
    method: str = "OPTIONS"
    uri: str = ""

    @property
    def request_uri(self) -> SipUri:
        return SipUri.parse(self.uri)

    def encode(self) -> bytes:
        return self._lines(f"{self.method} {self.uri} {SIP_VERSION}")


@dataclass
class SipResponse(SipMessage):
    status: int = 200
    reason: str = "OK"

    def encode(self) -> bytes:
        return self._lines(f"{SIP_VERSION} {self.status} {self.reason}")


def parse_head(head: str) -> tuple[str, Headers]:
    """The start line and headers of a message head (without the blank line)."""
    lines = head.split("\r\n") if "\r\n" in head else head.split("\n")
    start = lines[0]
    headers = Headers()
    current: tuple[str, str] | None = None
    for line in lines[1:]:
        if "\r" in line or "\n" in line:
            raise SipError("a bare CR or LF inside a header line")
        if not line:
            continue
        if line[0] in " \t":  # folded continuation (section 7.3.1)
            if current is None:
                raise SipError("a continuation line before any header")
            current = (current[0], current[1] + " " + line.strip())
            continue
        if current is not None:
            headers.add(*current)
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _TOKEN.match(name):
            raise SipError(f"bad header line {line[:60]!r}")
        current = (name, value.strip())
    if current is not None:
        headers.add(*current)
    for name in {n.lower() for n, _ in headers} & LIST_HEADERS:
        headers.values(name)  # a list header whose quotes do not close is an error now
    return start, headers


def parse_message(data: bytes) -> SipRequest | SipResponse:
    """One whole message (head, blank line and exactly the body its Content-Length gives)."""
    end = data.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end, sep = data.find(b"\n\n"), 2
        if end < 0:
            raise SipError("no blank line after the headers")
    try:
        head = data[:end].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipError("the message head is not UTF-8") from exc
    body = data[end + sep :]
    start, headers = parse_head(head)
    length = headers.get("Content-Length")
    if length is not None:
        if not length.isdigit():
            raise SipError(f"bad Content-Length {length!r}")
        if int(length) != len(body):
            raise SipError("the body is not as long as Content-Length says")
    status = _STATUS_LINE.match(start)
    if status is not None:
        return SipResponse(headers, body, int(status.group(1)), status.group(2) or "")
    parts = start.split(" ")
    if len(parts) != 3 or parts[2] != SIP_VERSION or not _TOKEN.match(parts[0]) or not parts[1]:
        raise SipError(f"bad start line {start[:80]!r}")
    return SipRequest(headers, body, parts[0], parts[1])  # methods are case-sensitive


# -- framing on a stream ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KeepAlive:
    """A CRLFCRLF ping (RFC 5626 section 3.5.1): answer with a single CRLF."""


Framed = SipRequest | SipResponse | KeepAlive | SipError


class SipStream:
    """Splits a byte stream into messages by their Content-Length."""

    def __init__(self, max_head: int = MAX_HEAD, max_body: int = MAX_BODY) -> None:
        self.max_head = max_head
        self.max_body = max_body
        self._buffer = bytearray()
        self.broken = False

    def feed(self, data: bytes) -> list[Framed]:
        if self.broken:
            return []
        self._buffer += data
        out: list[Framed] = []
        while True:
            item = self._next()
            if item is None:
                return out
            out.append(item)
            if isinstance(item, SipError) and item.fatal:
                self.broken = True
                self._buffer.clear()
                return out

    def _next(self) -> Framed | None:
        buffer = self._buffer
        while True:
            if buffer.startswith(b"\r\n\r\n"):
                del buffer[:4]
                return KeepAlive()
            if buffer and b"\r\n\r\n".startswith(bytes(buffer)):
                return None  # a keep-alive or a stray CRLF still arriving
            if not buffer.startswith(b"\r\n"):
                break
            del buffer[:2]  # a stray CRLF before a start line (section 7.5)
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > self.max_head:
                return SipError("message head too large", status=513, fatal=True)
            return None
        if end > self.max_head:
            return SipError("message head too large", status=513, fatal=True)
        head = bytes(buffer[:end])
        length = _content_length(head)
        if isinstance(length, SipError):
            return length
        if length > self.max_body:
            return SipError("message body too large", status=513, fatal=True)
        total = end + 4 + length
        if len(buffer) < total:
            return None
        data = bytes(buffer[:total])
        del buffer[:total]
        try:
            return parse_message(data)
        except SipError as exc:
            return exc


def _content_length(head: bytes) -> int | SipError:
    found: list[int] = []
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            text = value.strip()
            if not text.isdigit():
                return SipError("bad Content-Length", fatal=True)
            found.append(int(text))
    if not found:
        return SipError("Content-Length is required on a stream transport", fatal=True)
    if len(set(found)) > 1:
        return SipError("conflicting Content-Length headers", fatal=True)
    return found[0]


# -- building --------------------------------------------------------------------------------------


def response_to(
    request: SipRequest,
    status: int,
    *,
    to_tag: str | None = None,
    reason: str | None = None,
    extra: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> SipResponse:
    """A response as section 8.2.6.2 has it: Via, From, Call-ID and CSeq copied, To copied with our
    tag added (not on 100 Trying), then the extra headers and the body."""
    headers = Headers()
    for name, value in request.headers:
        if name in ("Via", "From", "Call-ID", "CSeq"):
            headers.add(name, value)
    to_value = request.header("To") or ""
    if to_tag is not None and status > 100:
        to = NameAddr.parse(to_value)
        if to.tag is None:
            to_value = str(to.with_param("tag", to_tag))
    headers.add("To", to_value)
    for name, value in extra:
        headers.add(name, value)
    return SipResponse(headers, body, status, reason or REASONS.get(status, "Unknown"))


def warning(code: int, agent: str, text: str) -> tuple[str, str]:
    """A Warning header (section 20.43): `302 agent "text"`."""
    clean = text.replace("\\", "/").replace('"', "'")
    return ("Warning", f'{code} {agent} "{clean}"')
