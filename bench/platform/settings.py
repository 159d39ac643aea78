"""The one place configuration is read: environment variables over an optional bench.toml.

Precedence, highest first: ``BENCH_*`` environment variables, then ``bench.toml`` (looked up as
``$BENCH_CONFIG``, else ``./bench.toml``, else ``$BENCH_HOME/bench.toml``), then defaults.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bench.errors import InvalidInput


UPLOAD_MAX_BYTES = 20 * 2**30
# An input may decode to this many times the upload limit (compressed HDF5, npz, zarr).
IMPORT_BYTES_PER_UPLOAD_BYTE = 4


@dataclass(frozen=True)
class ImportLimits:
    """The documented bounds on what one import may cost (BENCH_IMPORT_MAX_*; docs/deploy.md, "Security")."""

    max_bytes: int = IMPORT_BYTES_PER_UPLOAD_BYTE * UPLOAD_MAX_BYTES  # decoded bytes of all arrays of one input
    max_array_bytes: int = 16 * 2**30  # decoded bytes of any single array
    max_files: int = 20_000  # files in an uploaded archive or an imported directory
    max_ratio: int = 200  # decoded bytes per stored byte, once an input decodes to more than 64 MiB
    max_path_chars: int = 1024  # one path inside an archive or a directory
    max_path_depth: int = 32  # directory levels inside an archive or a directory
    # Decoded bytes an importer holds at once: a larger input is read and written in parts of whole episodes
    # of about this size (format.VersionWriter), so an import's memory stays near it whatever the input's size.
    part_bytes: int = 256 * 2**20


@dataclass(frozen=True)
class Settings:
    """Where bench keeps its database, its datasets and its scratch space."""

    home: Path
    database_url: str
    storage_url: str
    # Extra fsspec options for the storage URL (e.g. an S3 endpoint for a local object store).
    storage_options: dict[str, Any] = field(default_factory=dict)
    # Server side (`bench serve api`): the largest upload accepted, and requests per minute per token
    # (anonymous clients are counted per address); 0 turns the rate limit off.
    upload_max_bytes: int = UPLOAD_MAX_BYTES
    rate_limit_per_minute: int = 1200
    # Bounds on one import's cost, checked before anything is allocated (ImportLimits). import_max_bytes
    # defaults to IMPORT_BYTES_PER_UPLOAD_BYTE x upload_max_bytes.
    import_max_bytes: int = ImportLimits.max_bytes
    import_max_array_bytes: int = ImportLimits.max_array_bytes
    import_max_files: int = ImportLimits.max_files
    import_max_ratio: int = ImportLimits.max_ratio
    import_part_bytes: int = ImportLimits.part_bytes
    # Bytes of loaded versions the API keeps in memory for episode and frame requests, and bytes of
    # episode-range subsets kept on disk under cache/subsets (least recently used goes first).
    # Registry.load reads a version larger than this on demand (a LazyDataset) instead of into memory.
    load_max_bytes: int = 4 * 2**30
    api_cache_bytes: int = 2 * 2**30
    subset_cache_bytes: int = 10 * 2**30
    # Client side: a bench server to talk to instead of the local registry, and the token to send.
    server: str | None = None
    token: str | None = None
    # UI side (`bench serve ui`): the API's address as users' browsers reach it, for download links and
    # frames, when it differs from the one the UI itself uses (e.g. http://api:8000 inside compose).
    public_api_url: str | None = None
    # Runs: the torch device `bench evaluate` computes on when --device is not given (auto, cpu, cuda, cuda:N;
    # checked by bench.algorithms.devices where runs are planned).
    device: str = "auto"

    @property
    def import_limits(self) -> ImportLimits:
        return ImportLimits(max_bytes=self.import_max_bytes, max_array_bytes=self.import_max_array_bytes,
                            max_files=self.import_max_files, max_ratio=self.import_max_ratio,
                            part_bytes=self.import_part_bytes)

    @property
    def staging_dir(self) -> Path:
        """Local scratch space where versions are built before they are published."""
        return self.home / "staging"

    @property
    def cache_dir(self) -> Path:
        """Local copies of versions whose storage is remote (e.g. S3), verified on download."""
        return self.home / "cache"

    @classmethod
    def load(cls, **overrides: Any) -> "Settings":
        env = os.environ
        home = Path(overrides.pop("home", None) or env.get("BENCH_HOME") or "~/.bench").expanduser()
        file_values = _read_toml(home)

        def pick(name: str, default: Any) -> Any:
            if name in overrides:
                return overrides[name]
            env_name = f"BENCH_{name.upper()}"
            if env_name in env:
                return env[env_name]
            return file_values.get(name, default)

        storage_options = dict(file_values.get("storage_options", {}))
        endpoint = env.get("BENCH_S3_ENDPOINT_URL") or file_values.get("s3_endpoint_url")
        if endpoint:
            storage_options.setdefault("client_kwargs", {})["endpoint_url"] = endpoint
        storage_options.update(overrides.get("storage_options", {}))
        upload_max_bytes = _integer("upload_max_bytes", pick("upload_max_bytes", cls.upload_max_bytes))
        integers = {name: _integer(name, pick(name, default)) for name, default in (
            ("import_max_array_bytes", cls.import_max_array_bytes), ("import_max_files", cls.import_max_files),
            ("import_max_ratio", cls.import_max_ratio), ("import_part_bytes", cls.import_part_bytes),
            ("api_cache_bytes", cls.api_cache_bytes), ("load_max_bytes", cls.load_max_bytes),
            ("subset_cache_bytes", cls.subset_cache_bytes),
            ("import_max_bytes", IMPORT_BYTES_PER_UPLOAD_BYTE * upload_max_bytes))}
        return cls(
            home=home,
            database_url=pick("database_url", f"sqlite:///{home / 'bench.db'}"),
            storage_url=str(pick("storage_url", str(home / "datasets"))),
            storage_options=storage_options,
            upload_max_bytes=upload_max_bytes,
            **integers,
            rate_limit_per_minute=_integer("rate_limit_per_minute",
                                           pick("rate_limit_per_minute", cls.rate_limit_per_minute)),
            server=(pick("server", None) or None),
            token=(pick("token", None) or None),
            public_api_url=(pick("public_api_url", None) or None),
            device=str(pick("device", cls.device)),
        )


def _integer(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"setting {name} (BENCH_{name.upper()}) must be an integer, got {value!r}") from None
    if number < 0:
        raise InvalidInput(f"setting {name} (BENCH_{name.upper()}) must not be negative, got {number}")
    return number


_KNOWN_KEYS = {f.name for f in fields(Settings)} - {"home"} | {"s3_endpoint_url"}

# Every environment variable bench reads (docker-compose.yml and docs/deploy.md are checked against it).
ENVIRONMENT_VARIABLES = frozenset(
    {f"BENCH_{f.name.upper()}" for f in fields(Settings) if f.name != "storage_options"}
    | {"BENCH_S3_ENDPOINT_URL", "BENCH_CONFIG"}
)


def _read_toml(home: Path) -> dict[str, Any]:
    candidates = [os.environ.get("BENCH_CONFIG"), "bench.toml", str(home / "bench.toml")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            try:
                values = tomllib.loads(Path(candidate).read_text())
            except tomllib.TOMLDecodeError as exc:
                raise InvalidInput(f"{candidate}: not valid TOML ({exc})") from exc
            unknown = set(values) - _KNOWN_KEYS
            if unknown:
                raise InvalidInput(f"{candidate}: unknown settings {sorted(unknown)}; known: {sorted(_KNOWN_KEYS)}")
            return values
        if candidate == os.environ.get("BENCH_CONFIG") and candidate:
            raise InvalidInput(f"BENCH_CONFIG points to {candidate}, which does not exist")
    return {}
