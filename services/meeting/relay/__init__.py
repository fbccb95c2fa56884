"""The region media relay: a UDP SRTP relay around `media_core.relay_core`, with a TLS control API.

`python -m services.meeting.relay --region na --home .roomtrust` runs one relay; see
docs/relay-control.md for its control API and files.
"""
