"""The DM store: SQLAlchemy models of everything the service keeps."""
