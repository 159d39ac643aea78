"""What every importer checks before it reads a single value: no bytes from outside the input, no cost beyond the limits.

An uploaded file is hostile until proven otherwise (docs/deploy.md, "Security"). Formats that can
point outside themselves are walked first and refused when they do: HDF5 external storage,
external links, soft links, virtual datasets and filters bench cannot decode; Parquet column
chunks stored in another file; video containers other than a plain mp4. Sizes are checked from
the declared shapes, before anything is allocated: the decoded bytes of one array and of the
whole input, the number of files, and the expansion ratio (decoded bytes per stored byte) that
makes a few kilobytes of empty chunks or a zip bomb into gigabytes.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from bench.errors import InvalidInput, PayloadTooLarge
from bench.platform.settings import ImportLimits
from bench.platform.units import human_size

# Below this many decoded bytes an input's compression ratio is never a concern.
RATIO_FLOOR_BYTES = 64 << 20
# HDF5 filters that h5py decodes itself: deflate, shuffle, fletcher32, szip, nbit, scale-offset, lzf.
SAFE_HDF5_FILTERS = frozenset({1, 2, 3, 4, 5, 6, 32000})
# Element types an array may have: booleans, integers, floats (strings only where a reader asks for them).
NUMERIC_KINDS = frozenset("biuf")


class TooLarge(PayloadTooLarge):
    """An input that would decode to more than a limit allows (HTTP 413)."""


class DecodedBudget:
    """Adds up declared array sizes of one input and refuses as soon as one of the limits is passed."""

    def __init__(self, limits: ImportLimits, stored_bytes: int, what: str):
        self.limits, self.stored_bytes, self.what, self.total = limits, max(1, stored_bytes), what, 0

    def add(self, name: str, shape: Iterable[int], itemsize: int) -> None:
        count = 1
        for length in shape:
            if length < 0:
                raise InvalidInput(f"{self.what}: {name} declares a negative length")
            count *= int(length)
        size = count * int(itemsize)
        if size > self.limits.max_array_bytes:
            raise TooLarge(f"{self.what}: {name} would decode to {human_size(size)}, over the limit of "
                           f"{human_size(self.limits.max_array_bytes)} for one array (BENCH_IMPORT_MAX_ARRAY_BYTES)")
        self.total += size
        if self.total > self.limits.max_bytes:
            raise TooLarge(f"{self.what}: its arrays would decode to more than {human_size(self.limits.max_bytes)} "
                           "(BENCH_IMPORT_MAX_BYTES)")

    def check_ratio(self) -> None:
        if self.total > RATIO_FLOOR_BYTES and self.total > self.limits.max_ratio * self.stored_bytes:
            raise TooLarge(f"{self.what}: {human_size(self.stored_bytes)} would expand to {human_size(self.total)} "
                           f"({self.total // self.stored_bytes}x; at most {self.limits.max_ratio}x is accepted, "
                           "BENCH_IMPORT_MAX_RATIO)")


# -- HDF5 ------------------------------------------------------------------------------------------
def check_hdf5(handle, limits: ImportLimits, name: str, stored_bytes: int) -> None:
    """Walk every link and object of an open HDF5 file; refuse anything that reads outside it or costs too much.

    Refused: external links, soft links, a group reachable twice (a loop), virtual datasets,
    external raw storage, filters outside SAFE_HDF5_FILTERS, and dtypes that are not plain numbers
    or strings. Sizes come from the declared shapes; nothing is read.
    """
    import h5py

    budget = DecodedBudget(limits, stored_bytes, name)
    seen_groups: set[Any] = set()
    objects = 0

    def visit(group, path: str) -> None:
        nonlocal objects
        key = _object_key(group)
        if key in seen_groups:
            raise InvalidInput(f"{name}: group {path or '/'} is reachable twice (a loop of hard links)")
        seen_groups.add(key)
        for child in group.keys():
            objects += 1
            if objects > limits.max_files * 10:
                raise TooLarge(f"{name}: more than {limits.max_files * 10} HDF5 objects")
            child_path = f"{path}/{child}"
            link = group.get(child, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise InvalidInput(f"{name}: {child_path} is an external link to another file; "
                                   "bench imports only data stored inside the uploaded file")
            if isinstance(link, h5py.SoftLink):
                raise InvalidInput(f"{name}: {child_path} is a soft link; store the data itself, not a link")
            if not isinstance(link, h5py.HardLink):
                raise InvalidInput(f"{name}: {child_path} is a link of a kind bench does not follow")
            item = group[child]
            if isinstance(item, h5py.Group):
                visit(item, child_path)
            elif isinstance(item, h5py.Dataset):
                check_hdf5_dataset(item, child_path, name, budget)
            else:
                raise InvalidInput(f"{name}: {child_path} is neither a group nor a dataset")

    visit(handle, "")
    budget.check_ratio()


def _object_key(obj) -> Any:
    import h5py

    info = h5py.h5o.get_info(obj.id)
    token = getattr(info, "token", None)
    return (obj.id.fileno, token if token is not None else info.addr)


def check_hdf5_dataset(dataset, path: str, name: str, budget: DecodedBudget) -> None:
    import h5py

    plist = dataset.id.get_create_plist()
    if plist.get_layout() == h5py.h5d.VIRTUAL:
        raise InvalidInput(f"{name}: {path} is a virtual dataset whose data lives in other files; "
                           "bench imports only data stored inside the uploaded file")
    if plist.get_external_count() > 0:
        raise InvalidInput(f"{name}: {path} keeps its bytes in an external file; "
                           "bench imports only data stored inside the uploaded file")
    for index in range(plist.get_nfilters()):
        code = plist.get_filter(index)[0]
        if code not in SAFE_HDF5_FILTERS:
            raise InvalidInput(f"{name}: {path} is compressed with HDF5 filter {code}, which bench does not decode "
                               "(use gzip or lzf)")
    dtype = dataset.dtype
    if h5py.check_string_dtype(dtype) is None and (dtype.kind not in NUMERIC_KINDS or dtype.fields is not None
                                                   or dtype.subdtype is not None):
        raise InvalidInput(f"{name}: {path} has element type {_dtype_name(dtype)}; arrays must hold booleans, "
                           "integers or floats")
    budget.add(path, dataset.shape or (), dtype.itemsize)


def _dtype_name(dtype: np.dtype) -> str:
    import h5py

    if h5py.check_ref_dtype(dtype) is not None:
        return "reference"
    if dtype.fields is not None:
        return "compound"
    if dtype.kind == "c":
        return "complex"
    if h5py.check_vlen_dtype(dtype) is not None:
        return "variable-length"
    return {"O": "object", "V": "opaque"}.get(dtype.kind, str(dtype))


def hdf5_array(handle, key: str, name: str, min_ndim: int = 1, max_ndim: int = 8):
    """One numeric dataset of a checked file, its rank and element type checked; nothing read yet (slice it)."""
    import h5py

    item = handle.get(key)
    if item is None:
        raise InvalidInput(f"{name}: {key} is missing")
    if not isinstance(item, h5py.Dataset):
        raise InvalidInput(f"{name}: {key} is a group; an array belongs there")
    if not min_ndim <= item.ndim <= max_ndim:
        raise InvalidInput(f"{name}: {key} has {item.ndim} dimensions (shape {item.shape}); expected "
                           f"{min_ndim}" + (f" to {max_ndim}" if max_ndim != min_ndim else ""))
    if item.dtype.kind not in NUMERIC_KINDS:
        raise InvalidInput(f"{name}: {key} has element type {_dtype_name(item.dtype)}; expected numbers")
    return item


def json_metadata(value: Any) -> Any:
    """A metadata value from another tool as plain JSON: strings, finite numbers, small lists; else its description."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in NUMERIC_KINDS and value.size <= 64:
            return [json_metadata(v) for v in value.reshape(-1).tolist()] if value.ndim else json_metadata(value.item())
        if value.dtype.kind in "SUO" and value.size <= 64:
            return [json_metadata(v) for v in value.reshape(-1).tolist()]
        return f"<array {value.dtype.str} {list(value.shape)}>"
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [json_metadata(v) for v in value[:64]]
    return f"<{type(value).__name__}>"


# -- images ------------------------------------------------------------------------------------------
MAX_IMAGE_PIXELS = 4096 * 4096


def decode_image(source: Path | bytes, where: str) -> np.ndarray:
    """An uploaded PNG/JPEG as uint8 RGB, its size checked from the header before the pixels are decoded."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise InvalidInput(f"{where}: an image of {width}x{height} pixels; at most {MAX_IMAGE_PIXELS} pixels")
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidInput(f"{where}: an image that does not decode ({type(exc).__name__})") from None


# -- npz -------------------------------------------------------------------------------------------
def check_npz(path: Path, limits: ImportLimits) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Every member's declared shape and dtype from its .npy header, checked before any array is read."""
    from numpy.lib import format as npy

    name = path.name
    budget = DecodedBudget(limits, path.stat().st_size, name)
    declared = {}
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > limits.max_files:
                raise TooLarge(f"{name}: {len(members)} members; at most {limits.max_files} (BENCH_IMPORT_MAX_FILES)")
            for member in members:
                if not member.filename.endswith(".npy") or member.is_dir():
                    raise InvalidInput(f"{name}: member {member.filename[:100]!r} is not a .npy array")
                with archive.open(member) as stream:
                    version = npy.read_magic(stream)
                    if version not in ((1, 0), (2, 0), (3, 0)):
                        raise InvalidInput(f"{name}: member {member.filename[:100]!r} has .npy version {version}")
                    reader = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                    shape, _, dtype = reader(stream, max_header_size=10_000)
                    header_length = stream.tell()
                key = member.filename[: -len(".npy")]
                if dtype.hasobject or dtype.fields is not None or dtype.kind not in NUMERIC_KINDS:
                    raise InvalidInput(f"{name}: {key} has element type {dtype}; arrays must hold booleans, "
                                       "integers or floats")
                budget.add(key, shape, dtype.itemsize)
                if math.prod(shape) * dtype.itemsize != member.file_size - header_length:
                    raise InvalidInput(f"{name}: {key} declares shape {shape} but holds a different number of bytes")
                declared[key] = (tuple(shape), dtype)
    except zipfile.BadZipFile as exc:
        raise InvalidInput(f"{name}: not a readable .npz file ({exc})") from None
    except (ValueError, EOFError, OSError) as exc:
        raise InvalidInput(f"{name}: not a readable .npz file ({type(exc).__name__}: {str(exc)[:200]})") from None
    budget.check_ratio()
    return declared


# -- Parquet ---------------------------------------------------------------------------------------
def check_parquet(path: Path, limits: ImportLimits) -> None:
    """Refuse column chunks kept in other files, and row groups that would decode past the limits."""
    import pyarrow.parquet as pq

    name = path.name
    try:
        metadata = pq.ParquetFile(path).metadata
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a broken footer
        raise InvalidInput(f"{name}: not a readable Parquet file ({type(exc).__name__})") from None
    budget = DecodedBudget(limits, path.stat().st_size, name)
    for group_index in range(metadata.num_row_groups):
        group = metadata.row_group(group_index)
        for column_index in range(group.num_columns):
            column = group.column(column_index)
            if column.file_path:
                raise InvalidInput(f"{name}: column {column.path_in_schema} is stored in another file; "
                                   "bench imports only data stored inside the uploaded file")
            budget.add(f"row group {group_index} column {column.path_in_schema}",
                       (max(column.total_uncompressed_size, 0),), 1)
    budget.check_ratio()


# -- Arrow IPC -------------------------------------------------------------------------------------
ARROW_SUFFIXES = (".arrow", ".feather", ".ipc")
_ARROW_MAGIC = b"ARROW1"


def check_arrow_ipc(path: Path) -> None:
    """Refuse Arrow IPC files whose record batches are compressed.

    Uncompressed, a batch decodes to the bytes it occupies in the file, so the file's size bounds the
    cost; compressed (LZ4/ZSTD buffers), a few KB may claim gigabytes, and pyarrow allocates them
    before anything can be checked. Minari writes its Arrow datasets uncompressed. The flag lives in
    each message's flatbuffer header (RecordBatch.compression), read here without decoding a body.
    """
    import pyarrow as pa

    with pa.OSFile(str(path)) as source:
        if source.read(len(_ARROW_MAGIC)) == _ARROW_MAGIC:
            source.seek(8)  # the file format: magic, padding, then a stream of messages
        else:
            source.seek(0)  # the stream format
        reader = pa.ipc.MessageReader.open_stream(source)
        while True:
            try:
                message = reader.read_next_message()
            except StopIteration:
                return
            if message is None:
                return
            if _batch_is_compressed(message.metadata.to_pybytes()):
                raise InvalidInput(f"{path.name}: Arrow record batches with compressed buffers are not accepted "
                                   "(their decoded size cannot be checked first); write the file uncompressed")


def _batch_is_compressed(metadata: bytes) -> bool:
    """Whether a Message flatbuffer is a RecordBatch, or a DictionaryBatch holding one, with a compression table."""
    import struct

    def field(table: int, index: int) -> int:  # the field's offset within its table, 0 when absent
        vtable = table - struct.unpack_from("<i", metadata, table)[0]
        slot = 4 + 2 * index
        return struct.unpack_from("<H", metadata, vtable + slot)[0] if slot < struct.unpack_from("<H", metadata, vtable)[0] else 0

    def child(table: int, index: int) -> int | None:
        offset = field(table, index)
        return None if not offset else table + offset + struct.unpack_from("<I", metadata, table + offset)[0]

    root = struct.unpack_from("<I", metadata, 0)[0]
    header_type = metadata[root + field(root, 1)] if field(root, 1) else 0
    header = child(root, 2)
    if header is None:
        return False
    if header_type == 3:  # RecordBatch: field 3 is its BodyCompression
        return field(header, 3) != 0
    if header_type == 2:  # DictionaryBatch: field 1 is its RecordBatch
        data = child(header, 1)
        return data is not None and field(data, 3) != 0
    return False


# -- directories and archives ---------------------------------------------------------------------
def check_relative_name(name: str, limits: ImportLimits, where: str) -> None:
    """A path inside an archive or directory: bounded length, depth and component length."""
    parts = [p for p in name.split("/") if p]
    if len(name) > limits.max_path_chars:
        raise InvalidInput(f"{where}: a path of {len(name)} characters; at most {limits.max_path_chars}")
    if len(parts) > limits.max_path_depth:
        raise InvalidInput(f"{where}: a path {len(parts)} directories deep; at most {limits.max_path_depth}")
    if any(len(part.encode()) > 255 for part in parts):
        raise InvalidInput(f"{where}: a path component of more than 255 bytes")


def inside(root: Path, relative: str, where: str) -> Path:
    """``root/relative`` when it stays inside root (no '..', no absolute path, no link out); else refuse."""
    check_relative_name(relative, ImportLimits(), where)
    target = (root / relative).resolve()
    base = root.resolve()
    if relative.startswith("/") or (target != base and base not in target.parents):
        raise InvalidInput(f"{where}: the path {relative[:100]!r} points outside the dataset")
    return target


def check_directory(path: Path, limits: ImportLimits) -> int:
    """Count the files under an imported directory against the limits; return their total size."""
    total, files = 0, 0
    for item in path.rglob("*"):
        files += 1
        if files > limits.max_files:
            raise TooLarge(f"{path.name}: more than {limits.max_files} files (BENCH_IMPORT_MAX_FILES)")
        check_relative_name(item.relative_to(path).as_posix(), limits, path.name)
        if item.is_symlink():
            raise InvalidInput(f"{path.name}: {item.relative_to(path).as_posix()[:100]} is a symbolic link")
        if item.is_file():
            total += item.stat().st_size
    if total > limits.max_bytes:
        raise TooLarge(f"{path.name}: {human_size(total)} of files, over {human_size(limits.max_bytes)} (BENCH_IMPORT_MAX_BYTES)")
    return total


def json_text(text: Any, where: str, kind: type = dict) -> Any:
    """Parse JSON from another tool's metadata, insisting on the expected top-level type."""
    if isinstance(text, kind):
        return text
    if not isinstance(text, (str, bytes)):
        raise InvalidInput(f"{where} must be JSON text, got {type(text).__name__}")
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInput(f"{where} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(value, kind):
        raise InvalidInput(f"{where} must be a JSON {'object' if kind is dict else kind.__name__}, "
                           f"got {type(value).__name__}")
    return value
