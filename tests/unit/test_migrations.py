"""The data plane's migrations build exactly the schema its models declare."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from karta.core import db as store
from karta.dataplane.store import MIGRATIONS
from karta.dataplane.store.models import Base


async def test_migrations_match_the_models(tmp_path):
    engine = store.create_engine(f"sqlite:///{tmp_path / 'karta.db'}")
    try:
        await store.migrate(engine, MIGRATIONS)
        async with engine.connect() as conn:
            drift = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
    finally:
        await engine.dispose()
    assert drift == []
