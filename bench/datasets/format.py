"""bench format v1 on a local directory: write a version, read it back, hash its content and files.

Layout (docs/format.md is the full specification):
  manifest.json      written last; describes everything else, with the sha256 of every file
  steps.zarr/        Zarr v3 group, all episodes concatenated
  episodes.parquet   one row per episode
  media/             optional previews and videos
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.datasets.spaces import space_from_json, space_to_json
from bench.datasets.trajectories import Trajectories, flatten_tree, unflatten_tree
from bench.errors import IntegrityError, InvalidInput

FORMAT_NAME = "bench"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STEPS = "steps.zarr"
EPISODES = "episodes.parquet"
MEDIA = "media"
ORIGINAL = "original"  # a real-robot log's source files, kept as they were uploaded

# Vector chunks aim at ~4 MB (at most 65,536 rows): big enough for fast whole-array loads,
# small enough that an episode-range download fetches little beyond what it asks for.
_VECTOR_CHUNK_BYTES = 4 << 20
_MAX_VECTOR_CHUNK_ROWS = 65_536
_IMAGE_CHUNK_FRAMES = 64
# Codecs as (name, configuration) so that zarr is imported only by code that reads or writes steps.
_VECTOR_CODEC = ("blosc", {"cname": "lz4", "clevel": 5, "shuffle": "shuffle"})
_IMAGE_CODEC = ("zstd", {"level": 3})
_HASH_BLOCK = 1 << 22
# The columns episodes.parquet always has; any other column is an episode attribute.
EPISODE_COLUMNS = frozenset({"episode_id", "obs_start", "step_start", "length", "return", "terminated", "truncated"})


def is_image_array(array: np.ndarray) -> bool:
    """uint8 rows of two or more dimensions (HW or HWC) are frames."""
    return array.dtype == np.uint8 and array.ndim >= 3


def _codec(spec: tuple[str, dict[str, Any]]):
    from zarr.codecs import BloscCodec, ZstdCodec

    name, config = spec
    return {"blosc": BloscCodec, "zstd": ZstdCodec}[name](**config)


def _chunks_and_codec(rows: np.ndarray, total_rows: int | None) -> tuple[tuple[int, ...], Any]:
    """Chunk shape and codec for an array of ``rows``' dtype and row shape; ``total_rows`` (when known)
    caps a vector chunk at the array's length."""
    row_shape = rows.shape[1:]
    if is_image_array(rows):
        return (_IMAGE_CHUNK_FRAMES, *row_shape), _codec(_IMAGE_CODEC)
    row_bytes = max(1, int(np.prod(row_shape, dtype=np.int64)) * rows.dtype.itemsize)
    chunk = int(np.clip(_VECTOR_CHUNK_BYTES // row_bytes, 1, _MAX_VECTOR_CHUNK_ROWS))
    if total_rows is not None:
        chunk = max(1, min(chunk, total_rows))
    return (chunk, *row_shape), _codec(_VECTOR_CODEC)


def step_arrays(data: Trajectories) -> dict[str, np.ndarray]:
    """Every array of the steps group by its path, in canonical (sorted) order."""
    arrays = flatten_tree(data.observations, "observations")
    arrays.update(actions=data.actions, rewards=data.rewards, terminations=data.terminations, truncations=data.truncations)
    arrays.update({f"infos/{key}": value for key, value in data.infos.items()})
    return dict(sorted(arrays.items()))


def _row_alignment(path: str, rows: int, data: Trajectories) -> str:
    if path.startswith("observations"):
        return "observations"
    if path.startswith("infos/") and rows != data.num_steps:
        return "observations"
    return "steps"


def _little_endian(array: np.ndarray) -> np.ndarray:
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.ascontiguousarray(array)


def content_sha256(data: Trajectories) -> str:
    """Hash of decoded content, independent of compression and chunking.

    For each array in sorted path order: the UTF-8 path, NUL, the little-endian numpy dtype
    string (e.g. "<f4", "|b1"), NUL, the shape as JSON, NUL, then the raw little-endian C-order
    bytes. Then "episodes/lengths", NUL, and the episode lengths as little-endian int64.
    """
    digest = hashlib.sha256()
    for path, array in step_arrays(data).items():
        array = _little_endian(np.asarray(array))
        digest.update(f"{path}\0{array.dtype.str}\0{json.dumps(list(array.shape))}\0".encode())
        digest.update(memoryview(array.reshape(-1)).cast("B"))
    digest.update(b"episodes/lengths\0")
    digest.update(np.asarray(data.lengths, dtype="<i8").tobytes())
    return digest.hexdigest()


def stream_sha256(handle: BinaryIO) -> str:
    """sha256 of everything left in a binary file object, read in 4 MB blocks."""
    digest = hashlib.sha256()
    while block := handle.read(_HASH_BLOCK):
        digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return stream_sha256(handle)


def list_files(root: Path) -> list[str]:
    """Every file under root as a POSIX relative path, sorted; the manifest excluded."""
    files = []
    for directory, _, names in os.walk(root):
        for name in names:
            relative = Path(directory, name).relative_to(root).as_posix()
            if relative != MANIFEST:
                files.append(relative)
    return sorted(files)


def summarize_episodes(table: pa.Table) -> dict[str, Any]:
    """What a user asks of a version first, from episodes.parquet alone: return and length (mean, min, max),
    how episodes end, and the success rate where episodes carry a success flag."""
    def stats(name: str) -> dict[str, float]:
        values = table.column(name).to_numpy().astype(np.float64)
        return {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max())}

    summary: dict[str, Any] = {"return": stats("return"), "length": stats("length"),
                               "terminated": int(np.sum(table.column("terminated").to_numpy())),
                               "truncated": int(np.sum(table.column("truncated").to_numpy())), "success": None}
    if "success" in table.column_names:
        flags = table.column("success").to_numpy(zero_copy_only=False).astype(float)
        summary["success"] = {"rate": float(flags.mean()), "successes": int(flags.sum()), "episodes": int(len(flags))}
    return summary


def episodes_table(data: Trajectories) -> pa.Table:
    terminated = np.zeros(data.num_episodes, dtype=bool)
    truncated = np.zeros(data.num_episodes, dtype=bool)
    ends = data.step_starts + data.lengths - 1
    terminated[:] = data.terminations[ends]
    truncated[:] = data.truncations[ends]
    columns: dict[str, Any] = {
        "episode_id": np.arange(data.num_episodes, dtype=np.int64),
        "obs_start": data.obs_starts,
        "step_start": data.step_starts,
        "length": data.lengths.astype(np.int64),
        "return": data.episode_returns(),
        "terminated": terminated,
        "truncated": truncated,
    }
    reserved = set(columns)
    for key, values in data.episode_attrs.items():
        if key in reserved:
            raise InvalidInput(f"episode attribute {key!r} clashes with a reserved column of episodes.parquet")
        columns[key] = values
    return pa.table({key: pa.array(value) if not isinstance(value, pa.Array) else value for key, value in columns.items()})


class _ArrayStream:
    """One array of steps.zarr being appended to: rows wait in ``pending`` until a whole chunk can be written."""

    def __init__(self, group: Any, path: str, first: np.ndarray, rows: str, total_rows: int | None):
        self.path, self.rows = path, rows
        self.dtype, self.row_shape = first.dtype, first.shape[1:]
        chunks, codec = _chunks_and_codec(first, total_rows)
        self.chunk_rows = chunks[0]
        self.zarray = group.create_array(path, shape=(0, *self.row_shape), dtype=self.dtype, chunks=chunks,
                                         compressors=[codec])
        self.pending: list[np.ndarray] = []
        self.pending_rows = self.written = 0
        self.input_digest = hashlib.sha256()  # of the rows as given, to check the read-back against

    def append(self, array: np.ndarray) -> None:
        if array.dtype != self.dtype or array.shape[1:] != self.row_shape:
            raise InvalidInput(f"{self.path}: a later part has rows of {array.dtype} {list(array.shape[1:])}, "
                               f"the first had {self.dtype} {list(self.row_shape)}")
        self.input_digest.update(memoryview(array.reshape(-1)).cast("B"))
        self.pending.append(array)
        self.pending_rows += len(array)
        if self.pending_rows >= self.chunk_rows:
            block = self.pending[0] if len(self.pending) == 1 else np.concatenate(self.pending)
            whole = len(block) // self.chunk_rows * self.chunk_rows
            self._write(block[:whole])
            rest = block[whole:]
            self.pending, self.pending_rows = ([rest.copy()] if len(rest) else []), len(rest)

    def close(self) -> None:
        if self.pending:
            self._write(self.pending[0] if len(self.pending) == 1 else np.concatenate(self.pending))
        self.pending, self.pending_rows = [], 0

    def _write(self, block: np.ndarray) -> None:
        # Whole chunks at chunk boundaries: zarr never reads back and rewrites a chunk written earlier.
        start = self.written
        self.zarray.resize((start + len(block), *self.row_shape))
        self.zarray[start:start + len(block)] = block
        self.written += len(block)

    def read_back(self, content: Any) -> None:
        """Decode the stored array chunk by chunk into ``content`` (the content hash); it must equal what was given."""
        stored = hashlib.sha256()
        header = f"{self.path}\0{np.dtype(self.dtype).str}\0{json.dumps([self.written, *self.row_shape])}\0"
        content.update(header.encode())
        for start in range(0, self.written, self.chunk_rows):
            block = _little_endian(np.asarray(self.zarray[start:start + self.chunk_rows]))
            view = memoryview(block.reshape(-1)).cast("B")
            stored.update(view)
            content.update(view)
        if stored.digest() != self.input_digest.digest():
            raise IntegrityError(f"the staged {STEPS}/{self.path} does not decode to the imported rows")


class VersionWriter:
    """A version written a part at a time: each part is whole episodes (a Trajectories), appended in order.

    Memory stays near one part plus one chunk per array (~4 MB; 64 frames of an image array), whatever
    the version's size: rows are written to steps.zarr as soon as they fill a chunk, the episode table
    and the content hash are built as parts arrive, and verification decodes the stored arrays chunk
    by chunk. ``finish`` writes episodes.parquet and the manifest (last), after checking that the stored
    arrays decode to the rows given; the content hash equals ``content_sha256`` of all parts joined.
    ``total_rows`` (observation and step rows, when known ahead) keeps a small version's chunks no
    longer than its arrays, as a whole-version write has always made them.
    """

    def __init__(self, directory: Path, allow_nonfinite: bool = False, total_rows: tuple[int, int] | None = None):
        import zarr

        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.group = zarr.open_group(directory / STEPS, mode="w", zarr_format=3)
        self.allow_nonfinite, self.total_rows = allow_nonfinite, total_rows
        self.streams: dict[str, _ArrayStream] = {}
        self.tables: list[pa.Table] = []
        self.lengths: list[np.ndarray] = []
        self.episodes = self.steps = 0
        self.observation_space: Any = None
        self.action_space: Any = None

    def append(self, part: Trajectories) -> None:
        part.validate(allow_nonfinite=self.allow_nonfinite)
        arrays = {path: _little_endian(np.asarray(array)) for path, array in step_arrays(part).items()}
        if not self.streams:
            self.observation_space, self.action_space = part.observation_space, part.action_space
            for path, array in arrays.items():
                rows = _row_alignment(path, len(array), part)
                total = None if self.total_rows is None else self.total_rows[rows == "steps"]
                self.streams[path] = _ArrayStream(self.group, path, array, rows, total)
        elif set(arrays) != set(self.streams):
            raise InvalidInput(f"a later part has arrays {sorted(arrays)}, the first had {sorted(self.streams)}")
        for path, array in arrays.items():
            if _row_alignment(path, len(array), part) != self.streams[path].rows:
                raise InvalidInput(f"{path}: a later part aligns its rows with {_row_alignment(path, len(array), part)}")
            self.streams[path].append(array)
        table = episodes_table(part)
        offsets = {"episode_id": self.episodes, "obs_start": self.steps + self.episodes, "step_start": self.steps}
        for name, offset in offsets.items():
            table = table.set_column(table.column_names.index(name), name,
                                     pa.array(table.column(name).to_numpy() + offset))
        if self.tables and table.schema != self.tables[0].schema:
            raise InvalidInput("a later part's episode attributes differ from the first part's")
        self.tables.append(table)
        self.lengths.append(part.lengths)
        self.episodes += part.num_episodes
        self.steps += part.num_steps

    def finish(self, manifest_fields: dict[str, Any], media: dict[str, bytes | Path] | None = None,
               originals: dict[str, Path] | None = None) -> dict[str, Any]:
        """Close the arrays, verify them, write episodes.parquet, media, originals, then the manifest; return it."""
        if not self.streams:
            raise InvalidInput("the dataset is empty: it has no episodes with at least one step")
        for folder, files in ((MEDIA, media or {}), (ORIGINAL, originals or {})):
            for name, payload in files.items():
                target = self.directory / folder / _checked_relative(name)
                target.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(payload, Path):
                    shutil.copyfile(payload, target)
                else:
                    target.write_bytes(payload)
        content = hashlib.sha256()
        described: dict[str, dict[str, Any]] = {}
        for path, stream in self.streams.items():
            stream.close()
            stream.read_back(content)
            described[path] = {"dtype": stream.dtype.name, "shape": [stream.written, *stream.row_shape],
                               "rows": stream.rows}
        content.update(b"episodes/lengths\0")
        content.update(np.concatenate(self.lengths).astype("<i8").tobytes())
        pq.write_table(pa.concat_tables(self.tables), self.directory / EPISODES, compression="zstd")
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            **manifest_fields,
            "counts": {"episodes": self.episodes, "steps": self.steps, "observations": self.steps + self.episodes},
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
            "arrays": described,
            "content_sha256": content.hexdigest(),
            "files": describe_files(self.directory),
        }
        write_manifest(self.directory, manifest)
        return manifest


def write_version(
    directory: Path, data: Trajectories | Iterable[Trajectories], manifest_fields: dict[str, Any],
    media: dict[str, bytes | Path] | None = None, originals: dict[str, Path] | None = None,
    allow_nonfinite: bool = True,
) -> dict[str, Any]:
    """Write a whole version into an empty local directory; return the manifest (written last).

    ``data`` is one Trajectories or parts of whole episodes in order (VersionWriter). ``media`` files
    (previews, camera videos) go under ``media/``, ``originals`` (the files a real-robot log was
    imported from, kept for download) under ``original/``; names are relative paths whose segments
    are plain file names, so nothing lands outside the version.
    """
    whole = isinstance(data, Trajectories)
    writer = VersionWriter(directory, allow_nonfinite,
                           (data.num_steps + data.num_episodes, data.num_steps) if whole else None)
    for part in ([data] if whole else data):
        writer.append(part)
    return writer.finish(manifest_fields, media, originals)


_FILE_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}")


def _checked_relative(name: str) -> str:
    segments = name.split("/")
    if not name or any(not _FILE_SEGMENT.fullmatch(s) or s in {".", ".."} for s in segments) or len(segments) > 8:
        raise InvalidInput(f"file name {name!r} must be a relative path of plain names (letters, digits, '_', '-', '.')")
    return name


def describe_files(directory: Path) -> dict[str, dict[str, Any]]:
    return {
        name: {"sha256": file_sha256(directory / name), "size": (directory / name).stat().st_size}
        for name in list_files(directory)
    }


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode()


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    (directory / MANIFEST).write_bytes(manifest_bytes(manifest))


_ARRAY_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}(/[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}){0,15}")


def _check_array_paths(arrays: dict[str, Any]) -> None:
    """A manifest's array paths must be plain relative names: they are looked up inside steps.zarr."""
    for path in arrays:
        if not isinstance(path, str) or not _ARRAY_PATH.fullmatch(path) or ".." in path.split("/"):
            raise InvalidInput(f"{MANIFEST}: array path {str(path)[:100]!r} is not a plain relative name")


def read_steps(directory: Path, arrays: dict[str, dict[str, Any]], lengths: np.ndarray) -> Trajectories:
    import zarr

    _check_array_paths(arrays)
    if not {"actions", "rewards", "terminations", "truncations"} <= set(arrays):
        raise InvalidInput(f"{MANIFEST}: the arrays must include actions, rewards, terminations and truncations")
    group = zarr.open_group(directory / STEPS, mode="r", zarr_format=3)
    loaded = {path: group[path][...] for path in arrays}
    observations_flat = {path: value for path, value in loaded.items() if path.split("/")[0] == "observations"}
    if list(observations_flat) == ["observations"]:
        observations: Any = observations_flat["observations"]
    else:
        observations = unflatten_tree({path.split("/", 1)[1]: value for path, value in observations_flat.items()})
    return Trajectories(
        observations=observations,
        actions=loaded["actions"],
        rewards=loaded["rewards"],
        terminations=loaded["terminations"],
        truncations=loaded["truncations"],
        lengths=np.asarray(lengths, dtype=np.int64),
        infos={path[len("infos/"):]: value for path, value in loaded.items() if path.startswith("infos/")},
    )


def parse_manifest(raw: bytes, where: str) -> dict[str, Any]:
    """A manifest's JSON, or one line naming it: damaged files are reported, never shown as a traceback."""
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise IntegrityError(f"{where}: the manifest is damaged (not valid JSON)") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise IntegrityError(f"{where}: the manifest is damaged (no files table)")
    if manifest.get("format") != FORMAT_NAME or manifest.get("format_version") != FORMAT_VERSION:
        raise InvalidInput(
            f"{where}: format {manifest.get('format')!r} v{manifest.get('format_version')} is not bench format v1"
        )
    return manifest


def read_manifest(directory: Path, expected_sha256: str | None = None) -> dict[str, Any]:
    """The manifest of a version directory; with ``expected_sha256`` (the registry's record) it must match it."""
    path = directory / MANIFEST
    if not path.is_file():
        raise InvalidInput(f"{directory.name}: no {MANIFEST}; not a bench-format version")
    raw = path.read_bytes()
    if expected_sha256 is not None and hashlib.sha256(raw).hexdigest() != expected_sha256:
        raise IntegrityError(f"{MANIFEST}: sha256 differs from the registry's record; the stored version was changed")
    return parse_manifest(raw, MANIFEST)


def _loaded_by_read(name: str) -> bool:
    return name == EPISODES or name.startswith(STEPS + "/")


def verify_files(directory: Path, manifest: dict[str, Any], names: list[str] | None = None) -> None:
    """Check files against the manifest's sizes and sha256 (two threads hash at once); raise naming the first bad one.

    ``names`` limits the check to those files; by default it is everything ``read_version`` reads
    (steps.zarr and episodes.parquet). A file under steps.zarr that the manifest does not list is
    refused too: a missing chunk must never become fill values, nor an added one new data.
    """
    from concurrent.futures import ThreadPoolExecutor

    files = manifest["files"]
    wanted = names if names is not None else [name for name in files if _loaded_by_read(name)]
    for name in wanted:
        entry = files.get(name)
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or not isinstance(entry.get("size"), int):
            raise IntegrityError(f"{name}: not described by the manifest")
    if names is None and (directory / STEPS).is_dir():
        listed = set(files)
        for present in list_files(directory / STEPS):
            if f"{STEPS}/{present}" not in listed:
                raise IntegrityError(f"{STEPS}/{present}: a file the manifest does not list")

    def problem(name: str) -> str | None:
        path = directory / name
        if not path.is_file():
            return f"{name}: missing"
        if path.stat().st_size != files[name]["size"]:
            return f"{name}: size {path.stat().st_size} differs from the manifest's {files[name]['size']}"
        if file_sha256(path) != files[name]["sha256"]:
            return f"{name}: sha256 differs from the manifest"
        return None

    with ThreadPoolExecutor(max_workers=2) as pool:
        for found in pool.map(problem, sorted(wanted)):
            if found:
                raise IntegrityError(f"{found}; the stored version is damaged (bench datasets verify lists every problem)")


def read_version(directory: Path, expected_manifest_sha256: str | None = None,
                 verify: bool = True) -> tuple[Trajectories, dict[str, Any], pa.Table]:
    """Load a version's arrays into memory, with its manifest and episode table.

    Every file it reads is first checked against the manifest (and the manifest against
    ``expected_manifest_sha256`` when the registry knows it): what is loaded is what was published.
    """
    manifest = read_manifest(directory, expected_manifest_sha256)
    if verify:
        verify_files(directory, manifest)
    table = pq.read_table(directory / EPISODES)
    lengths = table.column("length").to_numpy()
    data = read_steps(directory, manifest["arrays"], lengths)
    attrs = {
        name: table.column(name).to_numpy(zero_copy_only=False)
        for name in table.column_names
        if name not in EPISODE_COLUMNS
    }
    data.episode_attrs = attrs
    data.observation_space = space_from_json(manifest["observation_space"])
    data.action_space = space_from_json(manifest["action_space"])
    return data, manifest, table


def _group_metadata_files(arrays: dict[str, Any]) -> list[str]:
    groups = {""}
    for path in arrays:
        parts = path.split("/")
        groups.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return [f"{STEPS}/{group}/zarr.json" if group else f"{STEPS}/zarr.json" for group in sorted(groups)]


def read_rows(directory: Path, manifest: dict[str, Any], obs_rows: slice, step_rows: slice,
              ensure: Callable[[list[str]], None] = lambda names: None,
              paths: list[str] | None = None) -> dict[str, np.ndarray]:
    """The given rows of every array (or of ``paths``), reading and verifying only the chunks they touch.

    ``ensure(names)`` makes those files present under ``directory`` first (a no-op on local storage;
    a download into a partial cache for remote storage). A chunk the manifest does not list was all
    fill values when written and must still be absent; one it lists must be present and intact.
    """
    import zarr

    arrays = manifest["arrays"]
    _check_array_paths(arrays)
    if paths is not None:
        unknown = sorted(set(paths) - set(arrays))
        if unknown:
            raise InvalidInput(f"no array {unknown[0]!r} in this version")
        arrays = {path: arrays[path] for path in paths}
    metadata = [name for name in _group_metadata_files(arrays) if name in manifest["files"]]
    metadata += [f"{STEPS}/{path}/zarr.json" for path in arrays]
    ensure(metadata)
    verify_files(directory, manifest, metadata)
    chunks, unlisted = [], []
    for path, described in arrays.items():
        rows = obs_rows if described.get("rows") == "observations" else step_rows
        if rows.stop <= rows.start:
            continue
        array_metadata = json.loads((directory / STEPS / path / "zarr.json").read_bytes())
        chunk_rows = int(array_metadata["chunk_grid"]["configuration"]["chunk_shape"][0])
        tail = "/0" * (len(array_metadata["shape"]) - 1)
        for chunk in range(rows.start // chunk_rows, (rows.stop - 1) // chunk_rows + 1):
            name = f"{STEPS}/{path}/c/{chunk}{tail}"
            (chunks if name in manifest["files"] else unlisted).append(name)
    ensure(chunks)
    verify_files(directory, manifest, chunks)
    for name in unlisted:
        if (directory / name).exists():
            raise IntegrityError(f"{name}: a file the manifest does not list; the stored version is damaged")
    group = zarr.open_group(directory / STEPS, mode="r", zarr_format=3)
    return {path: group[path][obs_rows if described.get("rows") == "observations" else step_rows]
            for path, described in arrays.items()}
