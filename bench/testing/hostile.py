"""Hostile inputs for the security tests: files that reach outside themselves, tiny files that declare huge
arrays, and malformed files that once crashed importers. Each writer makes a small file or directory.

The variants follow the classes of docs/deploy.md, "Security"; the tests try every one of them
through the importers and through the API.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

ROWS = 10


def _d4rl_base(handle: h5py.File, rows: int = ROWS) -> None:
    handle["observations"] = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)
    handle["actions"] = np.zeros((rows, 2), np.float32)
    handle["rewards"] = np.ones(rows, np.float32)
    terminals = np.zeros(rows, bool)
    terminals[-1] = True
    handle["terminals"] = terminals


def write_d4rl(path: Path, mutate: Callable[[h5py.File], None] | None = None) -> Path:
    """A valid small D4RL file, then ``mutate`` applied to the open file."""
    with h5py.File(path, "w") as handle:
        _d4rl_base(handle)
        if mutate is not None:
            mutate(handle)
    return path


def _replace(handle: h5py.File, key: str) -> None:
    del handle[key]


# -- data that lives outside the file (class 1) --------------------------------------------------------
OUTSIDE_VARIANTS = ("external_storage", "external_storage_info", "external_link", "virtual_dataset", "soft_link",
                    "unknown_filter")


def outside_variants(secret: Path) -> dict[str, Callable[[h5py.File], None]]:
    """HDF5 mutations that make ``observations`` (or an info) read ``secret``, a file outside the upload."""
    size = secret.stat().st_size

    def external_storage(handle):
        _replace(handle, "observations")
        handle.create_dataset("observations", shape=(ROWS, 3), dtype="u1", external=[(str(secret), 0, ROWS * 3)])

    def external_storage_info(handle):
        handle.create_dataset("infos/leak", shape=(ROWS,), dtype="u1", external=[(str(secret), 0, min(size, ROWS))])

    def external_link(handle):
        _replace(handle, "observations")
        handle["observations"] = h5py.ExternalLink(str(secret), "/observations")

    def virtual_dataset(handle):
        _replace(handle, "observations")
        layout = h5py.VirtualLayout(shape=(ROWS, 3), dtype="f4")
        layout[:] = h5py.VirtualSource(str(secret), "observations", shape=(ROWS, 3))
        handle.create_virtual_dataset("observations", layout)

    def soft_link(handle):
        handle["infos/alias"] = h5py.SoftLink("/rewards")

    def unknown_filter(handle):
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_chunk((ROWS,))
        plist.set_filter(32004, h5py.h5z.FLAG_OPTIONAL, ())  # LZ4: not a filter bench decodes
        space = h5py.h5s.create_simple((ROWS,))
        handle.require_group("infos")
        h5py.h5d.create(handle["infos"].id, b"filtered", h5py.h5t.NATIVE_FLOAT, space, dcpl=plist)

    return {"external_storage": external_storage, "external_storage_info": external_storage_info,
            "external_link": external_link, "virtual_dataset": virtual_dataset, "soft_link": soft_link,
            "unknown_filter": unknown_filter}


def secret_hdf5(path: Path) -> Path:
    """A file an attacker would like to read through a link (stands in for another user's data)."""
    with h5py.File(path, "w") as handle:
        handle["observations"] = np.full((ROWS, 3), 42.0, np.float32)
    return path


def hls_playlist(secret: Path) -> bytes:
    """A 'video' that is an HLS playlist naming a local file: FFmpeg, left to probe, would read it."""
    return f"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\nfile://{secret}\n#EXT-X-ENDLIST\n".encode()


def parquet_elsewhere(path: Path, target: str) -> Path:
    """A Parquet footer whose column chunks say they live in ``target``, another file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"timestamp": [0.0, 0.1], "state_0": [0.0, 1.0], "action_0": [0.0, 1.0]})
    real = path.with_name(path.name + ".real")
    pq.write_table(table, real)
    metadata = pq.read_metadata(real)
    metadata.set_file_path(target)
    pq.write_metadata(table.schema, path, metadata_collector=[metadata])
    real.unlink()
    return path


# -- unbounded cost from tiny inputs (class 2) -------------------------------------------------------------
def empty_chunks(handle: h5py.File, rows: int = 60, columns: int = 6_250_000) -> None:
    """A few KB declaring a (rows x columns) float32 array of chunks that were never written."""
    handle.create_dataset("infos/huge", shape=(ROWS, rows * columns // ROWS), dtype="f4", chunks=(1, 1 << 20))


def declared_rows(handle: h5py.File, rows: int = 10**12) -> None:
    """An observations array that declares ``rows`` rows (chunked, so it costs nothing to write)."""
    _replace(handle, "observations")
    handle.create_dataset("observations", shape=(rows, 3), dtype="f4", chunks=(1024, 3))


def npz_bomb(path: Path, megabytes: int = 480) -> Path:
    """A compressed npz of zeros: a few hundred KB that expand to ``megabytes`` MB."""
    rows = megabytes * (1 << 20) // (4 * 16)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, array in (("observations", np.zeros((rows, 16), np.float32)), ("actions", np.zeros((rows, 2), np.float32)),
                           ("terminals", np.zeros(rows, np.float32))):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array)
            archive.writestr(f"{key}.npy", buffer.getvalue())
    return path


def npz_lying_header(path: Path, rows: int = 10**12) -> Path:
    """An npz whose observations header declares ``rows`` rows but holds a few bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (rows, 3)})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("observations.npy", header.getvalue() + b"\0" * 12)
        for key, array in (("actions", np.zeros((2, 2), np.float32)), ("terminals", np.ones(2, np.float32))):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array)
            archive.writestr(f"{key}.npy", buffer.getvalue())
    return path


def sparse_tar(size: int = 20 << 30) -> bytes:
    """A tar holding one GNU sparse file that claims ``size`` bytes of holes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        info = tarfile.TarInfo("data/holes.bin")
        info.type = tarfile.GNUTYPE_SPARSE
        info.size = 0
        # tarfile writes no sparse map for a member it did not read; a zero-length body with the sparse
        # type and a huge real size in the header is what `tar --sparse` makes of a file of holes.
        archive.addfile(info, io.BytesIO(b""))
    raw = bytearray(buffer.getvalue())
    # GNU sparse header: the real size lives at offset 483 (12 octal bytes).
    raw[483:495] = f"{size:011o}\0".encode()
    checksum = sum(raw[:148]) + 8 * 32 + sum(raw[156:512])
    raw[148:156] = f"{checksum:06o}\0 ".encode()
    return bytes(raw)


def many_files_tar(count: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        top = tarfile.TarInfo("many")
        top.type = tarfile.DIRTYPE
        archive.addfile(top)
        for index in range(count):
            archive.addfile(tarfile.TarInfo(f"many/f{index}"), io.BytesIO(b""))
    return buffer.getvalue()


def named_tar(names: list[tuple[str, str]]) -> bytes:
    """A tar of (name, kind) entries, kind 'file' or 'dir', without checks of its own."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, kind in names:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = 1
                archive.addfile(info, io.BytesIO(b"x"))
    return buffer.getvalue()


# -- malformed files that once gave 500s (class 9) ------------------------------------------------------
def malformed_hdf5_variants() -> dict[str, Callable[[h5py.File], None]]:
    def set_(key, value):
        def mutate(handle):
            _replace(handle, key)
            handle[key] = value
        return mutate

    def as_group(key):
        def mutate(handle):
            _replace(handle, key)
            handle.create_group(key).create_dataset("x", data=np.zeros(3))
        return mutate

    def object_dtype(handle):
        _replace(handle, "observations")
        handle.create_dataset("observations", shape=(ROWS,), dtype=h5py.vlen_dtype(np.float32))

    def reference_dtype(handle):
        _replace(handle, "rewards")
        handle.create_dataset("rewards", shape=(ROWS,), dtype=h5py.ref_dtype)

    def soft_loop(handle):
        handle["infos/a"] = h5py.SoftLink("/infos/b")
        handle["infos/b"] = h5py.SoftLink("/infos/a")

    def group_containing_itself(handle):
        group = handle.create_group("infos")
        group["me"] = group

    def metadata_not_json(handle):
        group = handle.create_group("metadata")
        group.attrs["reference"] = handle.ref
        group.attrs["nan"] = np.nan
        group.attrs["compound"] = np.zeros(2, dtype=[("a", "f4"), ("b", "i4")])

    def opaque_metadata(handle):
        handle.create_group("metadata")["blob"] = np.void(b"\x00\x01")

    return {
        "compound_observations": set_("observations", np.zeros(ROWS, dtype=[("a", "f4"), ("b", "i4")])),
        "complex_actions": set_("actions", np.zeros((ROWS, 2), np.complex64)),
        "string_rewards": set_("rewards", np.array([b"x"] * ROWS)),
        "object_observations": object_dtype,
        "reference_rewards": reference_dtype,
        "scalar_observations": set_("observations", np.float32(1.0)),
        "scalar_actions": set_("actions", np.float32(1.0)),
        "scalar_rewards": set_("rewards", np.float32(1.0)),
        "scalar_terminals": set_("terminals", True),
        "rank3_rewards": set_("rewards", np.zeros((ROWS, 2, 2), np.float32)),
        "wide_terminals": set_("terminals", np.zeros((ROWS, 3), bool)),
        "vector_observations": set_("observations", np.zeros(ROWS, np.float32)),
        "short_actions": set_("actions", np.zeros((ROWS - 3, 2), np.float32)),
        "group_observations": as_group("observations"),
        "group_actions": as_group("actions"),
        "group_terminals": as_group("terminals"),
        "infos_array": lambda handle: handle.create_dataset("infos", data=np.zeros(ROWS)),
        "soft_link_loop": soft_loop,
        "group_containing_itself": group_containing_itself,
        "metadata_not_json": metadata_not_json,
        "opaque_metadata": opaque_metadata,
    }


def minari_metadata_variants() -> dict[str, dict]:
    """metadata.json edits that once crashed the Minari importer."""
    return {
        "env_spec_not_json": {"env_spec": "{not json"},
        "env_spec_list": {"env_spec": "[1, 2, 3]"},
        "env_spec_number": {"env_spec": 7},
        "env_spec_no_id": {"env_spec": json.dumps({"kwargs": {}})},
        "description_number": {"description": 12},
        "description_object": {"description": {"a": 1}},
    }


def npz_variants(path_for: Callable[[str], Path]) -> dict[str, Path]:
    """Malformed OGBench-style npz files, written to ``path_for(name)``."""
    def npz(name, arrays, extra: dict[str, bytes] | None = None):
        path = path_for(name)
        with zipfile.ZipFile(path, "w") as archive:
            for key, array in arrays.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=True)
                archive.writestr(f"{key}.npy", buffer.getvalue())
            for key, raw in (extra or {}).items():
                archive.writestr(key, raw)
        return path

    good = {"observations": np.zeros((6, 3), np.float32), "actions": np.zeros((6, 2), np.float32),
            "terminals": np.array([0, 0, 1, 0, 0, 1], np.float32)}
    return {
        "member_not_npy": npz("member_not_npy", good, {"notes.txt": b"hello"}),
        "structured_dtype": npz("structured_dtype", {**good, "observations": np.zeros(6, dtype=[("a", "f4"), ("b", "i4")])}),
        "object_dtype": npz("object_dtype", {**good, "actions": np.array([None] * 6, dtype=object)}),
        "two_d_terminals": npz("two_d_terminals", {**good, "terminals": np.zeros((6, 2), np.float32)}),
        "scalar_observations": npz("scalar_observations", {**good, "observations": np.float32(1)}),
        "vector_actions": npz("vector_actions", {**good, "actions": np.zeros(6, np.float32)}),
        "lying_header": npz_lying_header(path_for("lying_header")),
    }
