"""The test harness of tests/ and features/: what they share to run the product for real.

- `plugin`: the pytest fixtures (`schema_prefix`, `live_stack`, `meeting_stack`); the stack they
  yield is the typed description `protocol.stack.Stack` (`stack.endpoint("dm", "us").url`);
- `stores`: read-side engines on a running region's store;
- `fleets`: real virtual devices (asyncio driver) deployed and enrolled against a DM region;
- `call`: one participant of a live call (WSS signaling plus SRTP media over UDP);
- `interop`: a region's interop gateway started as its own process.

Production packages never import it (import-linter contracts in pyproject.toml).
"""
