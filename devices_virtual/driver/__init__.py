"""The asyncio driver: runs many DeviceAgents and MeetingClients in one process against real
services, with loopback stand-ins for the preconfigured domains and a recorder of every connection."""
