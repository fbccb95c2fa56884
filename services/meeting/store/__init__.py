"""The meeting store: SQLAlchemy 2 models and the queries the domain layer shares."""
