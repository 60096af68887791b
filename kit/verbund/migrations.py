"""Alembic glue: each service keeps its migrations in ``<service>-service/migrations``;
its ``env.py`` calls ``run_env`` and ``verbund migrate`` (also run by
``verbund run``) upgrades the service's database to its heads.

The outbox and inbox tables come from the kit's own branch
(``verbund/migration_versions``, revision ``verbund_0001``, label ``verbund``):
a service's first revision says ``depends_on = "verbund_0001"`` instead of
creating them itself. Only such a service gets the kit's folder among its
version locations, so a service whose first revision still creates the tables
is not handed a second revision that might run before it on a fresh database."""
from __future__ import annotations

import importlib
import os
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.script import ScriptDirectory  # noqa: F401 - re-exported for the tests
from sqlalchemy import text

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


KIT_VERSIONS = Path(__file__).resolve().parent / "migration_versions"
MESSAGING_REVISION = "verbund_0001"


def uses_kit_branch(versions: Path) -> bool:
    """Whether a revision in the folder ``versions`` depends on the kit's messaging branch."""
    return any(MESSAGING_REVISION in script.read_text(encoding="utf-8") for script in versions.glob("*.py"))


def alembic_config(service: str, database_url: str) -> Config:
    """The Alembic configuration of ``service`` for ``database_url`` (with the kit's branch where it is used)."""
    config = Config()
    location = migrations_dir(service)
    config.set_main_option("script_location", str(location))
    if uses_kit_branch(location / "versions"):
        config.set_main_option("version_path_separator", "os")
        config.set_main_option("version_locations", os.pathsep.join([str(location / "versions"), str(KIT_VERSIONS)]))
    config.attributes["database_url"] = database_url
    return config


def upgrade(service: str, database_url: str, revision: str = "heads") -> None:
    """Upgrade the database to ``revision``: by default every head (the service's and the kit's branch)."""
    command.upgrade(alembic_config(service, database_url), revision)


def run_env(target_metadata) -> None:
    """The body of every service's ``migrations/env.py``."""
    engine = make_engine(context.config.attributes["database_url"])
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=[target_metadata, messaging_metadata],
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Instances started together on an empty database (compose replicas) take turns: the one
                # that waited finds the schema at its heads and does nothing. Released at commit.
                connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('verbund-migrate'))"))
            context.run_migrations()
    engine.dispose()
