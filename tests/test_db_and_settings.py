"""Migrations create exactly the schema the models describe, on SQLite and PostgreSQL; settings precedence."""

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bench.platform import db
from bench.platform.settings import Settings
from bench.errors import InvalidInput
from bench.testing import services


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'x.db'}"
    else:
        url = services.create_database(request.getfixturevalue("pg_server"), f"m_{tmp_path.name[-20:].lower()}")
    engine = db.make_engine(url)
    yield engine
    engine.dispose()


def test_migrations_match_models(engine):
    assert db.current_revision(engine) is None
    db.migrate(engine)
    assert db.current_revision(engine) == db.head_revision(engine) == db.SCHEMA_REVISION
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), db.Base.metadata)
    assert diff == []
    db.migrate(engine)  # idempotent
    assert {"datasets", "dataset_versions", "alembic_version"} <= set(sa.inspect(engine).get_table_names())


def test_settings_precedence(tmp_path, monkeypatch):
    for key in ("BENCH_DATABASE_URL", "BENCH_STORAGE_URL", "BENCH_CONFIG", "BENCH_S3_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    monkeypatch.setenv("BENCH_HOME", str(home))
    defaults = Settings.load()
    assert defaults.database_url == f"sqlite:///{home / 'bench.db'}"
    assert defaults.storage_url == str(home / "datasets")
    home.mkdir()
    (home / "bench.toml").write_text('storage_url = "s3://bucket/prefix"\ns3_endpoint_url = "http://127.0.0.1:9"\n')
    from_file = Settings.load()
    assert from_file.storage_url == "s3://bucket/prefix"
    assert from_file.storage_options == {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}}
    monkeypatch.setenv("BENCH_STORAGE_URL", "/elsewhere")
    assert Settings.load().storage_url == "/elsewhere"  # environment beats the file
    (home / "bench.toml").write_text('storage = "typo"\n')
    with pytest.raises(InvalidInput, match="unknown settings"):
        Settings.load()
    monkeypatch.setenv("BENCH_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(InvalidInput, match="does not exist"):
        Settings.load()
