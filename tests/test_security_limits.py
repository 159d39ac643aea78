"""Class 2 of the security review: a tiny input cannot buy unbounded memory, time or disk.

Declared sizes are checked against the documented limits (BENCH_IMPORT_MAX_*) before anything is
allocated: empty HDF5 chunks, a declared 1e12-row array, npz bombs and lying .npy headers, sparse
and crowded tars, and directories with too many files. Each is refused with 413 (or 422) and leaves
no version. Peak server memory while refusing is measured by benchmarks/hostile_inputs.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench.datasets import Registry
from bench.datasets.interop.guards import TooLarge
from bench.errors import PayloadTooLarge
from bench.testing import hostile
from bench.testing.data import random_trajectories, write_d4rl_file
from tests.api_helpers import make_api
from tests.conftest import make_settings

MAX_FILES = 200


@pytest.fixture(scope="module", params=["sqlite-local", "postgres-s3"])
def api(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    settings = dataclasses.replace(make_settings(request, tmp, request.param), import_max_files=MAX_FILES)
    api = make_api(settings, tmp)
    yield api
    api.client.__exit__(None, None, None)
    api.registry.close()


def _refused(api, data: bytes, dataset_id: str, filename: str, status: int, message: str) -> None:
    response = api.upload(data, dataset_id, filename=filename)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert str(api.registry.settings.home) not in response.json()["detail"]
    assert api.client.get(f"/api/v1/datasets/{dataset_id}").status_code == 404


@pytest.mark.parametrize("variant, message", [
    (hostile.empty_chunks, "BENCH_IMPORT_MAX_RATIO"),
    (hostile.declared_rows, "BENCH_IMPORT_MAX_ARRAY_BYTES"),
    (lambda handle: hostile.declared_rows(handle, rows=10**8), "BENCH_IMPORT_MAX_RATIO"),
])
def test_hdf5_that_declares_more_than_it_holds_is_refused(api, tmp_path, variant, message):
    path = hostile.write_d4rl(tmp_path / "declared.hdf5", variant)
    assert path.stat().st_size < 100_000
    _refused(api, path.read_bytes(), "alice/declared", "declared.hdf5", 413, message)


@pytest.mark.parametrize("writer, message", [
    (lambda path: hostile.npz_bomb(path, megabytes=100), "BENCH_IMPORT_MAX_RATIO"),
    (hostile.npz_lying_header, "BENCH_IMPORT_MAX_ARRAY_BYTES"),
    (lambda path: hostile.npz_lying_header(path, rows=1000), "holds a different number of bytes"),
])
def test_npz_bombs_and_lying_headers_are_refused(api, tmp_path, writer, message):
    path = writer(tmp_path / "bomb.npz")
    assert path.stat().st_size < 1_000_000
    status = 413 if "BENCH_" in message else 422
    _refused(api, path.read_bytes(), "alice/bomb", "bomb.npz", status, message)


def test_a_tar_with_a_sparse_file_is_refused_before_extraction(api):
    _refused(api, hostile.sparse_tar(20 << 30), "alice/sparse", "sparse.tar", 422, "sparse")
    assert not list((api.registry.settings.home / "uploads").glob("*/unpacked"))


def test_a_tar_with_too_many_members_is_refused(api):
    _refused(api, hostile.many_files_tar(MAX_FILES + 1), "alice/many", "many.tar", 413, "BENCH_IMPORT_MAX_FILES")


def test_local_imports_obey_the_same_limits(request, tmp_path):
    base = make_settings(request, tmp_path, "sqlite-local")
    source = write_d4rl_file(tmp_path / "ok.hdf5", random_trajectories(np.random.default_rng(0), episodes=4))
    for limits, message in (({"import_max_bytes": 1000}, "BENCH_IMPORT_MAX_BYTES"),
                            ({"import_max_array_bytes": 100}, "BENCH_IMPORT_MAX_ARRAY_BYTES")):
        registry = Registry.open(dataclasses.replace(base, **limits))
        try:
            with pytest.raises(TooLarge, match=message):
                registry.import_path(source, "local/limited")
            assert registry.search()[0] == 0
        finally:
            registry.close()
    crowded = tmp_path / "crowded"
    (crowded / "data").mkdir(parents=True)
    (crowded / "data" / "metadata.json").write_text("{}")
    for index in range(30):
        (crowded / f"f{index}").write_bytes(b"")
    registry = Registry.open(dataclasses.replace(base, import_max_files=20))
    try:
        with pytest.raises(PayloadTooLarge, match="BENCH_IMPORT_MAX_FILES"):
            registry.import_path(crowded, "local/crowded")
    finally:
        registry.close()


def test_limits_are_settings_with_documented_defaults(tmp_path, monkeypatch):
    from bench.platform.settings import ENVIRONMENT_VARIABLES, Settings

    monkeypatch.setenv("BENCH_UPLOAD_MAX_BYTES", "1000")
    monkeypatch.setenv("BENCH_IMPORT_MAX_FILES", "7")
    settings = Settings.load(home=tmp_path)
    assert settings.import_max_bytes == 4000  # a multiple of the upload limit unless set
    assert settings.import_limits.max_files == 7
    deploy = (__import__("pathlib").Path(__file__).parents[1] / "docs" / "deploy.md").read_text()
    for variable in ("BENCH_IMPORT_MAX_BYTES", "BENCH_IMPORT_MAX_ARRAY_BYTES", "BENCH_IMPORT_MAX_FILES",
                     "BENCH_IMPORT_MAX_RATIO", "BENCH_API_CACHE_BYTES", "BENCH_SUBSET_CACHE_BYTES"):
        assert variable in ENVIRONMENT_VARIABLES and variable in deploy


def test_a_small_image_that_decodes_to_a_huge_frame_is_refused(tmp_path):
    from PIL import Image

    from bench.datasets.interop import read_source
    from bench.errors import InvalidInput
    from bench.testing.data import write_robot_folder

    directory = tmp_path / "folder"
    write_robot_folder(directory)
    episode = sorted(p for p in directory.iterdir() if p.is_dir())[0]
    for video in episode.glob("*.mp4"):
        video.unlink()
    frames = episode / "wrist"
    frames.mkdir()
    Image.new("RGB", (5000, 5000)).save(frames / "000.png")
    assert (frames / "000.png").stat().st_size < 200_000
    with pytest.raises(InvalidInput, match="5000x5000 pixels"):
        read_source(directory)


@pytest.mark.parametrize("compression", ["zstd", "lz4"])
def test_minari_arrow_with_compressed_batches_is_refused_before_decoding(tmp_path, compression):
    import pyarrow as pa

    from bench.datasets.interop import read_source
    from bench.errors import InvalidInput
    from bench.testing.data import write_minari_dir

    directory = write_minari_dir(tmp_path / "arrow", random_trajectories(np.random.default_rng(0), episodes=2),
                                 data_format="arrow")
    assert read_source(directory).trajectories.num_steps > 0  # Minari's own files are uncompressed
    episode = directory / "data" / "0" / "part-0.arrow"
    table = pa.ipc.open_file(str(episode)).read_all()
    with pa.OSFile(str(episode), "wb") as sink:
        with pa.ipc.new_file(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as writer:
            writer.write_table(table)
    with pytest.raises(InvalidInput, match="compressed buffers"):
        read_source(directory)
