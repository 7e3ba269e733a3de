"""The control plane's migrations build exactly the schema its models declare."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from karta.controlplane.app import MIGRATIONS
from karta.controlplane.models import Base
from karta.core import db as store


async def test_control_plane_migrations_match_the_models(tmp_path):
    engine = store.create_engine(f"sqlite:///{tmp_path / 'control.db'}")
    try:
        await store.migrate(engine, MIGRATIONS)
        async with engine.connect() as conn:
            drift = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
    finally:
        await engine.dispose()
    assert drift == []
