"""The meeting domain: roles, accounts, settings, conferences, lobby, moderation, chat, recording,
CDR and retention, as plain Python (no web framework)."""
