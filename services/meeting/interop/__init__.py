"""The interop gateway for third-party room systems (MT-07): SIP only over SIP TLS with SRTP, H.323
only with H.235. A sans-IO core (`core`, `sip`, `sdp`, `h323`, `bridge`) and an asyncio driver
(`server`), run as `python -m services.meeting.interop --region R --home H`; docs/interop.md says
what is modelled and what is not."""
