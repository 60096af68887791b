"""Alembic glue: each service keeps its migrations in ``<service>-service/migrations``;
its ``env.py`` calls ``run_env`` and ``verbund migrate`` (also run by
``verbund run``) upgrades the service's database to head."""
from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command, context
from alembic.config import Config

from verbund.database import make_engine
from verbund.outbox import messaging_metadata
from verbund.settings import env


def migrations_dir(service: str) -> Path:
    """The service's Alembic folder: ``<SERVICE>_MIGRATIONS_DIR`` or ``MIGRATIONS_DIR`` where set (an
    image installs the package from a wheel), else ``migrations/`` beside the package (editable install)."""
    configured = env("MIGRATIONS_DIR", service=service)
    if configured:
        return Path(configured)
    package = importlib.import_module(service)
    return Path(package.__file__).resolve().parent.parent / "migrations"


def alembic_config(service: str, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir(service)))
    config.attributes["database_url"] = database_url
    return config


def upgrade(service: str, database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(service, database_url), revision)


def run_env(target_metadata) -> None:
    """The body of every service's ``migrations/env.py``."""
    engine = make_engine(context.config.attributes["database_url"])
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=[target_metadata, messaging_metadata],
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
