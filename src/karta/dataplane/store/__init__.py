"""The data plane's tables (SQLAlchemy models) and their Alembic migrations; engines and
migrating are `karta.core.db`'s."""

from pathlib import Path

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
