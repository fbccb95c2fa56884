"""The image's HEALTHCHECK: `python -m services.common.healthcheck` inside the container.

GET https://127.0.0.1:<ROOMTRUST_PORT>/healthz; exit 0 on 200, else 1 with the reason. Like the
cloud's probes it dials an address, so it checks neither the certificate's name nor its chain
(the service pins its own TLS context; this only asks whether it answers).
"""

from __future__ import annotations

import http.client
import ssl
import sys

from services.common.settings import SettingsError, load_settings

PATH = "/healthz"
TIMEOUT = 4.0


def check(port: int, host: str = "127.0.0.1") -> str | None:
    """None when the service answers 200 on `host:port`, else why not."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(host, port, timeout=TIMEOUT, context=ctx)
    try:
        conn.request("GET", PATH)
        status = conn.getresponse().status
    except OSError as exc:
        return f"https://{host}:{port}{PATH}: {exc}"
    finally:
        conn.close()
    return None if status == 200 else f"https://{host}:{port}{PATH} answered {status}"


def main() -> int:
    try:
        port = load_settings().port
    except SettingsError as exc:
        print(f"unhealthy: bad settings: {exc}", file=sys.stderr)
        return 1
    if not port:
        print(
            "unhealthy: ROOMTRUST_PORT is not set (a dynamic port cannot be probed)",
            file=sys.stderr,
        )
        return 1
    reason = check(port)
    if reason:
        print(f"unhealthy: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
