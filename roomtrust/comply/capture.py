"""Wire audit on the loopback interface with scapy (MT-06, MT-12, MT-18, DM-03, DM-12).

`WireCapture` sniffs `lo` in a background thread during a scenario. It filters in Python
(`lfilter`), so no libpcap and no BPF compiler are needed, and it reads with a PF_PACKET socket that
drops the outgoing copy of each loopback packet, so every packet is seen once. Sniffing needs
CAP_NET_RAW (root).

The analysis turns the capture into evidence: the TCP/UDP flows seen, the connections opened
(who dialled whom), and every place a marker appears in clear payload (per packet and per
reassembled TCP stream, so a marker split across segments is found too).
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scapy.all import AsyncSniffer, Packet, conf, wrpcap
from scapy.layers.inet import IP, TCP, UDP

from roomtrust.comply.evidence import Evidence, nonempty

RECEIVE_BUFFER = 32 * 1024 * 1024
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # root may exceed rmem_max


@dataclass(frozen=True)
class Flow:
    proto: str
    src: str
    sport: int
    dst: str
    dport: int

    def __str__(self) -> str:
        return f"{self.proto} {self.src}:{self.sport} -> {self.dst}:{self.dport}"


@dataclass(frozen=True)
class MarkerHit:
    flow: Flow
    where: str  # "packet" or "stream"


def can_capture() -> bool:
    return os.geteuid() == 0


def _flow(pkt: Packet) -> Flow | None:
    if IP not in pkt:
        return None
    for layer, name in ((TCP, "tcp"), (UDP, "udp")):
        if layer in pkt:
            return Flow(
                name, pkt[IP].src, int(pkt[layer].sport), pkt[IP].dst, int(pkt[layer].dport)
            )
    return None


DRAIN_ATTEMPTS = 300  # 0.1 s each


class WireCapture:
    """Capture TCP and UDP on an interface, optionally only packets touching `ports`."""

    def __init__(self, ports: set[int] | None = None, iface: str = "lo") -> None:
        self.ports = set(ports) if ports else None
        self.iface = iface
        self.packets: list[Packet] = []
        self._sniffer: AsyncSniffer | None = None
        self._sentinel = b"roomtrust-capture-drain-" + secrets.token_hex(8).encode()
        self._drained = threading.Event()

    def _wanted(self, pkt: Packet) -> bool:
        flow = _flow(pkt)
        if flow is None:
            return False
        if flow.proto == "udp" and bytes(pkt[UDP].payload) == self._sentinel:
            self._drained.set()
            return False
        return self.ports is None or flow.sport in self.ports or flow.dport in self.ports

    def start(self) -> WireCapture:
        ready = threading.Event()
        sock = conf.L2socket(iface=self.iface)
        # a loopback frame can be 64 KiB; scapy's default 64 KiB receive buffer drops bursts of them
        sock.ins.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, RECEIVE_BUFFER)
        self._socket = sock
        self._sniffer = AsyncSniffer(
            opened_socket=sock,
            lfilter=self._wanted,
            store=True,
            started_callback=ready.set,
        )
        self._sniffer.start()
        if not ready.wait(10):
            raise RuntimeError(f"the sniffer on {self.iface} did not start")
        return self

    def stop(self) -> list[Packet]:
        """Stop sniffing (idempotent) and return what was captured. When the sniffer cannot catch
        up with the loopback backlog the capture is incomplete and this raises; the sniffer thread
        is stopped either way, so a failed capture never slows what runs after it."""
        if self._sniffer is None:
            return self.packets
        try:
            if self.iface == "lo":
                self._drain()
        except RuntimeError:
            sniffer, self._sniffer = self._sniffer, None
            sniffer.stop(join=False)
            self._socket.close()
            raise
        sniffer, self._sniffer = self._sniffer, None
        result = sniffer.stop()
        self._socket.close()
        self.packets = list(result) if result is not None else []
        return self.packets

    def _drain(self) -> None:
        """Send a sentinel datagram and wait until the sniffer has read it: the socket delivers in
        order, so every packet sent before it has been seen (a sleep would only make that likely)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
            sink.bind(("127.0.0.1", 0))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                # a loaded machine can leave the sniffer seconds behind the loopback backlog
                for _ in range(DRAIN_ATTEMPTS):
                    sender.sendto(self._sentinel, sink.getsockname())
                    if self._drained.wait(0.1):
                        return
        raise RuntimeError(
            f"the capture on {self.iface} did not drain in {DRAIN_ATTEMPTS / 10:.0f} s"
        )

    def __enter__(self) -> WireCapture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        wrpcap(str(path), self.packets)
        return path

    def flows(self) -> list[Flow]:
        seen: dict[Flow, None] = {}
        for pkt in self.packets:
            flow = _flow(pkt)
            if flow is not None:
                seen.setdefault(flow, None)
        return list(seen)

    def connections(self) -> list[Flow]:
        """TCP connections opened (SYN without ACK), from the dialling side."""
        opened: dict[Flow, None] = {}
        for pkt in self.packets:
            if TCP in pkt and pkt[TCP].flags.S and not pkt[TCP].flags.A:
                flow = _flow(pkt)
                if flow is not None:
                    opened.setdefault(flow, None)
        return list(opened)

    def _streams(self) -> dict[Flow, bytes]:
        segments: dict[Flow, dict[int, bytes]] = defaultdict(dict)
        for pkt in self.packets:
            flow = _flow(pkt)
            if flow is not None and flow.proto == "tcp":
                data = bytes(pkt[TCP].payload)
                if data:
                    segments[flow].setdefault(int(pkt[TCP].seq), data)
        return {f: b"".join(d for _, d in sorted(s.items())) for f, s in segments.items()}

    def marker_hits(self, marker: bytes) -> list[MarkerHit]:
        """Every flow in which `marker` travels in the clear."""
        if not marker:
            raise ValueError("an empty marker matches everything")
        hits: dict[MarkerHit, None] = {}
        for pkt in self.packets:
            flow = _flow(pkt)
            layer = TCP if flow is not None and flow.proto == "tcp" else UDP
            if flow is not None and marker in bytes(pkt[layer].payload):
                hits.setdefault(MarkerHit(flow, "packet"), None)
        for flow, stream in self._streams().items():
            if marker in stream:
                hits.setdefault(MarkerHit(flow, "stream"), None)
        return list(hits)

    def summary(self, marker: bytes | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "interface": self.iface,
            "ports": sorted(self.ports) if self.ports else "all",
            "packets": len(self.packets),
            "flows": [str(f) for f in self.flows()],
            "connections_opened": [str(f) for f in self.connections()],
        }
        if marker is not None:
            data["marker"] = marker.decode("latin-1")
            data["marker_hits"] = [
                {"flow": str(h.flow), "where": h.where} for h in self.marker_hits(marker)
            ]
        return data


def assert_no_marker_in_clear(
    capture: WireCapture, marker: bytes, evidence: Evidence | None = None
) -> dict[str, Any]:
    """The check behind "nothing in the clear" scenarios: stop the capture, keep its summary as
    evidence, fail when it captured nothing (an empty capture proves nothing) or when the marker
    appears in any clear payload."""
    capture.stop()
    summary = capture.summary(marker)
    if evidence is not None:
        evidence.write_json("wire-summary.json", summary)
    nonempty(capture.packets, "captured packets")
    assert not summary["marker_hits"], f"the marker travels in the clear: {summary['marker_hits']}"
    return summary
