"""The local stack: every service region, media relay and PSTN gateway as its own process on
127.0.0.1 with TLS (`launcher`), and its commands `roomtrust up|down|status` (`cli`). It writes the
stack description (`protocol.stack`) that every tool reads."""
