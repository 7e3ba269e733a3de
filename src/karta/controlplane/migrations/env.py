"""Alembic environment for the control plane's own database (see `karta.core.db.migrate`)."""

from alembic import context

from karta.controlplane.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
