"""The region's balancer (`roomtrust.stack.balancer`): Debian's haproxy in front of two TLS
replicas that ask for a client certificate, as the DM replicas do.

- Both replicas healthy: connections reach both, and the client's certificate reaches the replica
  (TCP passthrough: the replica sees the device's own certificate, verified by the region CA).
- One replica's readiness probe answers 503: haproxy's health check takes it out of rotation and
  every new connection goes to the other (the negative control of the first test: the same traffic
  reaches both while both are healthy).
- A replica that stops listening is taken out too, and comes back when it answers again.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from roomtrust.stack.balancer import (
    Backend,
    Balancer,
    render_config,
    start_balancer,
    stop_balancer,
    wait_for_states,
)
from roomtrust.stack.balancer import haproxy_missing as _haproxy_missing
from services.common.ca import RegionCA

pytestmark = pytest.mark.skipif(bool(_haproxy_missing()), reason=str(_haproxy_missing()))


class Replica(ThreadingHTTPServer):
    """A TLS server that names itself and the client certificate it was shown."""

    daemon_threads = True

    def __init__(self, name: str, context: ssl.SSLContext) -> None:
        self.name = name
        self.healthy = True
        super().__init__(("127.0.0.1", 0), Handler)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        port: int = self.server_address[1]
        return port


class Handler(BaseHTTPRequestHandler):
    server: Replica

    def do_GET(self) -> None:
        if self.path == "/healthz":
            status, body = (200, b"ok") if self.server.healthy else (503, b"not ready")
        else:
            assert isinstance(self.connection, ssl.SSLSocket)
            peer = self.connection.getpeercert() or {}
            subject = {str(a[0]): str(a[1]) for rdn in peer.get("subject", ()) for a in rdn}
            who = {"replica": self.server.name, "client": subject.get("commonName")}
            status, body = 200, json.dumps(who).encode()
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def region(tmp_path: Path) -> Iterator[tuple[Balancer, dict[str, Replica], ssl.SSLContext]]:
    ca = RegionCA.create("balancer-test")
    cert_file, key_file = ca.write_server_files(tmp_path, ["127.0.0.1"])
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    server.load_verify_locations(tmp_path / "ca.pem")
    server.verify_mode = ssl.CERT_OPTIONAL  # the probe shows none; a device shows its own
    client_cert, client_key = ca.issue_client_cert("device-7", "SN-7")
    (tmp_path / "client.pem").write_bytes(client_cert)
    (tmp_path / "client.key").write_bytes(client_key)
    client = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    client.load_cert_chain(tmp_path / "client.pem", tmp_path / "client.key")
    replicas = {name: Replica(name, server) for name in ("a", "b")}
    balancer = start_balancer(
        tmp_path / "lb", "dm_us", [Backend(n, r.port) for n, r in replicas.items()]
    )
    try:
        wait_for_states(balancer.stats_socket, {"a": "UP", "b": "UP"})
        yield balancer, replicas, client
    finally:
        stop_balancer(balancer.pid)
        for replica in replicas.values():
            replica.shutdown()
            replica.server_close()


def ask(balancer: Balancer, client: ssl.SSLContext) -> dict[str, str]:
    conn = http.client.HTTPSConnection("127.0.0.1", balancer.port, context=client, timeout=5)
    try:
        conn.request("GET", "/who")
        answer: dict[str, str] = json.loads(conn.getresponse().read())
        return answer
    finally:
        conn.close()


def test_connections_reach_every_healthy_replica_with_the_clients_own_certificate(
    region: tuple[Balancer, dict[str, Replica], ssl.SSLContext],
) -> None:
    balancer, _replicas, client = region
    answers = [ask(balancer, client) for _ in range(10)]
    assert {a["replica"] for a in answers} == {"a", "b"}
    assert {a["client"] for a in answers} == {"device-7"}  # mTLS passes through the balancer


def test_a_replica_whose_probe_fails_leaves_the_rotation_and_comes_back(
    region: tuple[Balancer, dict[str, Replica], ssl.SSLContext],
) -> None:
    balancer, replicas, client = region
    replicas["b"].healthy = False
    states = wait_for_states(balancer.stats_socket, {"a": "UP", "b": "DOWN"})
    assert "503" in states["b"]["check_status"] or states["b"]["check_status"].startswith("L7")
    assert {ask(balancer, client)["replica"] for _ in range(10)} == {"a"}
    replicas["b"].healthy = True
    wait_for_states(balancer.stats_socket, {"a": "UP", "b": "UP"})
    assert {ask(balancer, client)["replica"] for _ in range(10)} == {"a", "b"}


def test_a_replica_that_stops_listening_is_taken_out(
    region: tuple[Balancer, dict[str, Replica], ssl.SSLContext],
) -> None:
    balancer, replicas, client = region
    replicas["a"].shutdown()
    replicas["a"].server_close()
    wait_for_states(balancer.stats_socket, {"a": "DOWN", "b": "UP"})
    assert {ask(balancer, client)["replica"] for _ in range(6)} == {"b"}


def test_the_configuration_balances_tcp_by_least_connections_and_probes_over_tls(
    tmp_path: Path,
) -> None:
    config = render_config("dm_us", 4443, [Backend("r1", 5001), Backend("r2", 5002)], tmp_path)
    assert "mode tcp" in config and "balance leastconn" in config
    assert "uri /healthz" in config and "expect status 200" in config
    assert config.count("check check-ssl verify none") == 2
