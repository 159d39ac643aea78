"""Metadata in SQL: SQLAlchemy 2 typed models, engines, sessions, and migrations to head.

The schema itself is owned by Alembic (migrations/); these models must match it, and a test
checks that a migrated database and the models agree.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker

from bench.errors import BenchError

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# The newest migration's revision. Checking it with one query keeps Alembic out of every CLI start;
# a test asserts it equals Alembic's head, so a new migration must update it.
SCHEMA_REVISION = "0005"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: sa.JSON, dt.datetime: sa.DateTime(timezone=True)}


class DatasetRow(Base):
    """A dataset name, ``namespace/name``; its versions hold the data."""

    __tablename__ = "datasets"
    __table_args__ = (sa.UniqueConstraint("namespace", "name", name="uq_datasets_namespace_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    namespace: Mapped[str] = mapped_column(sa.String(300))
    name: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Private datasets are readable only by those who may write their namespace (and admins).
    private: Mapped[bool] = mapped_column(default=False, server_default=sa.false())

    versions: Mapped[list["VersionRow"]] = relationship(back_populates="dataset", order_by="VersionRow.version")
    tags: Mapped[list["DatasetTagRow"]] = relationship(cascade="all, delete-orphan", lazy="selectin",
                                                       order_by="DatasetTagRow.tag")


class VersionState:
    """A version's life: staging -> published, later yanked. Failed imports delete their row."""

    STAGING = "staging"
    PUBLISHED = "published"
    YANKED = "yanked"


class VersionRow(Base):
    """One immutable version ``namespace/name-vN``; visible to readers only once published."""

    __tablename__ = "dataset_versions"
    __table_args__ = (
        sa.UniqueConstraint("dataset_id", "version", name="uq_dataset_versions_dataset_version"),
        sa.Index("ix_dataset_versions_state", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(sa.ForeignKey("datasets.id", ondelete="CASCADE"))
    version: Mapped[int]
    state: Mapped[str] = mapped_column(sa.String(16))
    storage_path: Mapped[str] = mapped_column(sa.String(400))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    published_at: Mapped[dt.datetime | None]
    # Who is writing a staging version, so gc can tell a crashed import from a running one.
    writer_host: Mapped[str | None] = mapped_column(sa.String(255))
    writer_pid: Mapped[int | None]
    episodes: Mapped[int | None] = mapped_column(sa.BigInteger)
    steps: Mapped[int | None] = mapped_column(sa.BigInteger)
    size_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    manifest_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    content_sha256: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    observation_space: Mapped[dict[str, Any] | None]
    action_space: Mapped[dict[str, Any] | None]
    env: Mapped[dict[str, Any] | None]
    description: Mapped[str | None] = mapped_column(sa.Text)
    license: Mapped[str | None] = mapped_column(sa.String(200))
    source_format: Mapped[str | None] = mapped_column(sa.String(32))
    yanked_at: Mapped[dt.datetime | None]
    yank_reason: Mapped[str | None] = mapped_column(sa.Text)

    dataset: Mapped[DatasetRow] = relationship(back_populates="versions", lazy="joined")


class EnvironmentRow(Base):
    """A task that evaluates datasets (``metaworld/drawer-open``): how to build it, and its reference scores."""

    __tablename__ = "environments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(300), unique=True)
    gym_id: Mapped[str] = mapped_column(sa.String(200))
    kwargs: Mapped[dict[str, Any]]
    family: Mapped[str | None] = mapped_column(sa.String(64))
    description: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    references: Mapped[list["ReferenceScoreRow"]] = relationship(
        back_populates="environment", order_by="ReferenceScoreRow.source", cascade="all, delete-orphan")


class ReferenceScoreRow(Base):
    """A random or expert return of an environment, with where it came from (bench's own or published)."""

    __tablename__ = "reference_scores"
    __table_args__ = (sa.UniqueConstraint("environment_id", "source", "kind", name="uq_reference_scores_env_source_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    environment_id: Mapped[int] = mapped_column(sa.ForeignKey("environments.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(sa.String(32))  # "bench" (measured here) or e.g. "d4rl" (published)
    kind: Mapped[str] = mapped_column(sa.String(16))  # "random" or "expert"
    value: Mapped[float] = mapped_column(sa.Float)
    episodes: Mapped[int | None]  # episodes averaged; None for published values
    method: Mapped[str | None] = mapped_column(sa.Text)  # how it was obtained
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    environment: Mapped[EnvironmentRow] = relationship(back_populates="references")


class RunState:
    """A run's life: pending -> running -> completed | failed | interrupted (resumable from its checkpoint)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class RunRow(Base):
    """One algorithm x dataset version x seed x config: its plan, provenance, progress and results."""

    __tablename__ = "runs"
    __table_args__ = (sa.Index("ix_runs_algorithm_dataset", "algorithm", "dataset_id"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    sweep_id: Mapped[str] = mapped_column(sa.String(32), index=True)  # the runs one `bench evaluate` started
    algorithm: Mapped[str] = mapped_column(sa.String(64))
    config: Mapped[dict[str, Any]]
    config_hash: Mapped[str] = mapped_column(sa.String(64), index=True)
    seed: Mapped[int]
    dataset_id: Mapped[str] = mapped_column(sa.String(400))
    dataset_content_sha256: Mapped[str] = mapped_column(sa.String(64))
    env_name: Mapped[str | None] = mapped_column(sa.String(300))
    plan: Mapped[dict[str, Any]]  # offline/online steps, evaluation schedule, executor
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    code_version: Mapped[str | None] = mapped_column(sa.String(100))
    host: Mapped[str | None] = mapped_column(sa.String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    progress: Mapped[dict[str, Any] | None]  # {"phase", "step", "total"}
    timings: Mapped[dict[str, Any] | None]  # seconds per phase, updates/s, evaluation time
    results: Mapped[dict[str, Any] | None]  # {"offline": {"final": {...}, "best": {...}}, "online": ...}
    checkpoint: Mapped[str | None] = mapped_column(sa.String(400))  # storage path of the latest checkpoint
    error: Mapped[str | None] = mapped_column(sa.Text)
    # Who published the run to this server (``bench results push``); None for runs made here.
    owner: Mapped[str | None] = mapped_column(sa.String(64), index=True)

    metrics: Mapped[list["RunMetricRow"]] = relationship(
        back_populates="run", order_by="RunMetricRow.id", cascade="all, delete-orphan")


class RunMetricRow(Base):
    """One point of a curve: an evaluation (return, score, success) or a training-loss summary."""

    __tablename__ = "run_metrics"
    __table_args__ = (sa.Index("ix_run_metrics_run_kind", "run_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(sa.ForeignKey("runs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(sa.String(16))  # "eval" or "train"
    phase: Mapped[str] = mapped_column(sa.String(16))  # "offline" or "online"
    step: Mapped[int] = mapped_column(sa.BigInteger)  # updates (offline) or environment steps (online)
    values: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    run: Mapped[RunRow] = relationship(back_populates="metrics")


class DatasetTagRow(Base):
    """A free-form label on a dataset name (``demos``, ``real-robot``), for search."""

    __tablename__ = "dataset_tags"

    dataset_id: Mapped[int] = mapped_column(sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(sa.String(64), primary_key=True, index=True)


class UserRow(Base):
    """An account on a server; every user owns the namespace named after them."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class GroupRow(Base):
    """A lab or team: its members share the namespaces the group owns."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class GroupMemberRow(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)


class NamespaceRow(Base):
    """Who may publish under a top-level namespace: one user or one group (admins always may)."""

    __tablename__ = "namespaces"
    __table_args__ = (sa.CheckConstraint("(owner_user_id IS NULL) <> (owner_group_id IS NULL)",
                                         name="ck_namespaces_one_owner"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    owner_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    owner_group_id: Mapped[int | None] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TokenRow(Base):
    """An API token. Only its sha256 is stored: the token itself is shown once, at creation."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(64))
    token_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    prefix: Mapped[str] = mapped_column(sa.String(16))  # the token's first characters, to tell tokens apart
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class UploadState:
    """An upload session: open (parts arrive) -> importing -> completed (a version was published) | failed;
    or open -> aborted."""

    OPEN = "open"
    IMPORTING = "importing"  # completion under way; only one request may do it
    COMPLETED = "completed"
    FAILED = "failed"
    ABORTED = "aborted"


class UploadRow(Base):
    """A resumable upload: the server appends parts at their offsets, then imports the whole file."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    dataset_id: Mapped[str] = mapped_column(sa.String(400))
    filename: Mapped[str] = mapped_column(sa.String(200))
    size: Mapped[int] = mapped_column(sa.BigInteger)  # declared by the client
    sha256: Mapped[str] = mapped_column(sa.String(64))  # declared by the client, checked on completion
    received: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    state: Mapped[str] = mapped_column(sa.String(16), index=True)
    options: Mapped[dict[str, Any]]  # format, description, license, env_id, tags, private
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    version_id: Mapped[str | None] = mapped_column(sa.String(400))  # what completion published
    error: Mapped[str | None] = mapped_column(sa.Text)


class LeaderboardRow(Base):
    """A user-defined leaderboard suite (the shipped ones are files in bench/leaderboards/suites)."""

    __tablename__ = "leaderboards"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    spec: Mapped[dict[str, Any]]
    owner: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RobotTrialRow(Base):
    """One real-robot evaluation trial: a policy tried a task once, before or after online fine-tuning."""

    __tablename__ = "robot_trials"
    __table_args__ = (sa.Index("ix_robot_trials_dataset_policy", "dataset", "policy"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset: Mapped[str] = mapped_column(sa.String(400))  # the robot log (namespace/name) it belongs to
    task: Mapped[str] = mapped_column(sa.String(300))
    policy: Mapped[str] = mapped_column(sa.String(100))
    phase: Mapped[str] = mapped_column(sa.String(16))  # "offline" or "online" (after fine-tuning)
    trial: Mapped[int]
    success: Mapped[bool]
    judge: Mapped[str | None] = mapped_column(sa.String(100))  # who labeled it
    notes: Mapped[str | None] = mapped_column(sa.Text)
    owner: Mapped[str | None] = mapped_column(sa.String(64))  # who recorded it on a server
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers proceed while an import commits; the busy timeout makes concurrent
    # writers wait for the lock instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine):
    from alembic.config import Config

    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise BenchError(f"migrations not found at {MIGRATIONS_DIR}; install bench from its source tree (pip install -e .)")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def migrate(engine: Engine) -> None:
    """Run pending Alembic migrations up to head."""
    from alembic import command

    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def current_revision(engine: Engine) -> str | None:
    """The database's Alembic revision, None for a database bench has not initialised."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def ensure_schema(engine: Engine) -> None:
    """Migrate to the newest schema unless the database is already there."""
    if current_revision(engine) != SCHEMA_REVISION:
        migrate(engine)


def head_revision(engine: Engine) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
