"""The wire contracts of roomtrust, in one leaf package.

Every message, code and list that crosses a process boundary is written here once: signaling
messages (`signaling`), the DM device channel (`dm_channel`), the `error` field of every refusal
(`errors`), the DM-09 field lists (`fields`), the firmware package format (`firmware`), the service
regions (`regions`) and the TLS policy (`tls`), plus the one signaling client (`signaling_client`).

This package imports nothing else of the project, so services, virtual devices, load generators
and simulations can all depend on it.
"""
