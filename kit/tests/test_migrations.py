"""The outbox and inbox from the kit's migration branch, on SQLite and PostgreSQL: a fresh
database gets them from it, and a database migrated when the service's first revision still
created them itself keeps them, with their rows, and reaches the same heads."""
import pytest
from sqlalchemy import create_engine, insert, inspect, select, text

from probe.models import metadata as probe_metadata
from verbund import migrations
from verbund.outbox import inbox_table, messaging_metadata

# Alembic records the service head only: the kit revision it depends on counts as applied with it.
HEADS = {"0001"}


def _engine(database_url):
    return create_engine(database_url.replace("postgresql://", "postgresql+psycopg2://"))


def _state(database_url):
    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            versions = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
            indexes = {index["name"] for index in inspect(conn).get_indexes("outbox")}
            inbox = conn.execute(select(inbox_table.c.event_id)).scalars().all()
        return tables, versions, indexes, inbox
    finally:
        engine.dispose()


@pytest.mark.integration  # PostgreSQL too
def test_a_fresh_database_gets_the_outbox_and_inbox_from_the_kit_branch(database_url):
    assert migrations.uses_kit_branch(migrations.migrations_dir("probe") / "versions")
    for service in ("members", "events", "matching", "notifications"):  # none pastes the tables any more
        assert migrations.uses_kit_branch(migrations.migrations_dir(service) / "versions"), service
    migrations.upgrade("probe", database_url)
    tables, versions, indexes, inbox = _state(database_url)
    assert {"outbox", "inbox", "effects"} <= tables
    assert versions == HEADS
    assert "ix_outbox_published_at" in indexes
    assert inbox == []
    migrations.upgrade("probe", database_url)  # again: nothing to do, nothing fails
    assert _state(database_url)[1] == HEADS


@pytest.mark.integration  # PostgreSQL too
def test_a_database_migrated_by_the_old_first_revision_keeps_its_tables_and_rows(database_url):
    # What the first revision did before the tables moved into the kit: everything in one go.
    engine = _engine(database_url)
    with engine.begin() as conn:
        probe_metadata.create_all(conn)
        messaging_metadata.create_all(conn)
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('0001')"))
        conn.execute(insert(inbox_table).values(event_id="e-1", type="member.registered",
                                                processed_at=text("CURRENT_TIMESTAMP")))
    engine.dispose()

    migrations.upgrade("probe", database_url)
    tables, versions, indexes, inbox = _state(database_url)
    assert {"outbox", "inbox", "effects"} <= tables
    assert versions == HEADS
    assert "ix_outbox_published_at" in indexes
    assert inbox == ["e-1"]  # the processed events are remembered: no second effect after the upgrade


def test_an_image_names_the_migrations_folder_a_wheel_install_has_not_beside_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PROBE_MIGRATIONS_DIR", str(tmp_path))
    assert migrations.migrations_dir("probe") == tmp_path
    monkeypatch.delenv("PROBE_MIGRATIONS_DIR")
    assert migrations.migrations_dir("probe").name == "migrations"


@pytest.mark.integration
def test_instances_started_together_on_an_empty_postgresql_database_take_turns_migrating_it(postgres):
    """Compose replicas of one service start at once on an empty database: each upgrade must
    succeed (the later ones find the schema at its heads), none may fail halfway. Processes, as
    replicas are (Alembic's context is one per process)."""
    import subprocess
    import sys

    database_url = postgres.create()
    script = f"from verbund import migrations; migrations.upgrade('members', {database_url!r})"
    racers = [subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
              for _ in range(4)]
    failures = [err for racer in racers for err in [racer.communicate(timeout=180)[1]] if racer.returncode]
    assert failures == []
    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            versions = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()
    heads = migrations.ScriptDirectory.from_config(migrations.alembic_config("members", database_url)).get_heads()
    assert versions == set(heads) - {migrations.MESSAGING_REVISION}  # the kit branch counts as applied with it
