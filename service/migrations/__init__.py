"""Alembic migrations of the registry database (run with `tfship db upgrade`)."""
