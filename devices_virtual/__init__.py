"""Virtual room devices: device models, the sans-IO device agent and meeting client, the asyncio driver."""
