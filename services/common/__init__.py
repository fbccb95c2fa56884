"""What both services share: settings, the region CA, TLS contexts, the database, the operation log."""
