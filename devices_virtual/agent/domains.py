"""The preconfigured domains a room device contacts (DM-12), and what each is for.

A virtual device contacts these and its DM server address, nothing else. The proxy test site is
disabled by default; the vendor links are opened only on a user action.
"""

from __future__ import annotations

from typing import Final

CONNECTIVITY_CHECKS: Final = (
    ("www.msftncsi.com", "/ncsi.txt"),
    ("www.google.com", "/generate_204"),
)
NCSI_BODY: Final = b"Microsoft NCSI"
NTP_SERVERS: Final = ("time.windows.com", "pool.ntp.org")
DM_VENDOR_HOST: Final = "dm.yealink.com"
PROXY_TEST_HOST: Final = "www.google.com"
VENDOR_LINKS: Final = {
    "vendor_web": "www.yealink.com",
    "support": "support.yealink.com",
}

PRECONFIGURED_HOSTS: Final = frozenset(
    {host for host, _ in CONNECTIVITY_CHECKS}
    | set(NTP_SERVERS)
    | {DM_VENDOR_HOST, PROXY_TEST_HOST}
    | set(VENDOR_LINKS.values())
)
# What a device may contact while it boots, besides its DM server.
BOOT_HOSTS: Final = frozenset({host for host, _ in CONNECTIVITY_CHECKS} | set(NTP_SERVERS))
