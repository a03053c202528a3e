"""Alembic migrations on SQLite and PostgreSQL: the revisions build exactly the models' schema,
a new database is created and stamped, an old one is stamped and upgraded, a newer one is
refused."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text
from test_store import pg_url, sqlite_url  # noqa: F401 - fixtures

from monitor.store_migrate import alembic_config, head, migrate
from monitor.store_models import Base
from monitor.store_reader import StoreReader


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def _revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def _differences(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()


def test_upgrading_an_empty_database_builds_exactly_the_models(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
    finally:
        engine.dispose()
    assert _revision(url) == head()
    assert _differences(url) == []


def test_a_new_database_is_created_and_stamped(url: str) -> None:
    StoreReader(url, sensor="pi").close()
    assert _revision(url) == head()
    assert _differences(url) == []


def test_a_database_from_before_alembic_is_stamped_and_kept(url: str) -> None:
    engine = create_engine(url)
    try:
        Base.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO device_settings (sensor, mac, label) VALUES ('pi', 'aa', 'Echo')")
            )
    finally:
        engine.dispose()
    assert _revision(url) is None
    reader = StoreReader(url, sensor="pi")
    try:
        with reader.engine.connect() as conn:
            labels = conn.execute(text("SELECT label FROM device_settings")).scalars().all()
    finally:
        reader.close()
    assert labels == ["Echo"]
    assert _revision(url) == head()


def test_a_database_from_a_newer_micwatch_is_refused(url: str) -> None:
    StoreReader(url, sensor="pi").close()
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(RuntimeError, match="upgrade micwatch"):
            migrate(engine)
    finally:
        engine.dispose()
    assert _revision(url) == "9999"
