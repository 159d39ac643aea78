"""Datasets larger than memory, measured: import, verify and train under a memory limit; sampling; video; prints JSON.

    .venv/bin/python benchmarks/streaming.py [--gigabytes 10] [--budget-gigabytes 3] [--parts big,sampler,video]

big      a D4RL HDF5 file of ``--gigabytes`` (17-d states, 6-d actions and a 64x64x3 camera frame per row in
         infos/camera, which state learners never read) is imported, verified and trained on (IQL, 2x256,
         a few hundred offline updates, through the harness) by a child process whose address space is
         limited to its size after imports + ``--budget-gigabytes`` (RLIMIT_AS), with BENCH_IMPORT_PART_BYTES
         and BENCH_LOAD_MAX_BYTES set from the budget. Reported: peak resident memory, import MB/s, seconds.
         Then the same file through a `bench serve api` process (importing in parts with the same settings):
         uploaded with `bench datasets upload`, downloaded back with `bench datasets download`; the server's
         peak resident memory (VmHWM) is reported.
sampler  on a version that fits (1M transitions, 17-d): minibatches of 256 per second from the chunk-shuffled
         sampler (window 4 blocks of 8 MB) against uniform draws from the version in memory, alone and in a
         training loop (each batch to tensors + one IQL 2x256 update); how fast blocks decode (verified chunks
         to transitions); and how many distinct episodes a minibatch holds under each (the correlation block
         shuffling brings).
video    64x64 camera frames: decoded frames per second from an H.264 mp4 (bench.datasets.video) against
         reading the same frames as uint8 from steps.zarr (zstd chunks) and from memory.
Measure on an idle machine (the load average is reported).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OBS, ACT, FRAME = 17, 6, (64, 64, 3)


def write_big_d4rl(path: Path, gigabytes: float) -> int:
    """A D4RL file of about ``gigabytes``, written 20,000 rows at a time; returns its rows."""
    row_bytes = 2 * OBS * 4 + ACT * 4 + 4 + 2 + int(np.prod(FRAME))
    rows = int(gigabytes * 2**30 / row_bytes) // 1000 * 1000
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as handle:
        sets = {"observations": (OBS,), "next_observations": (OBS,), "actions": (ACT,), "rewards": (),
                "infos/camera": FRAME}
        created = {key: handle.create_dataset(key, (rows, *shape), np.uint8 if key == "infos/camera" else np.float32)
                   for key, shape in sets.items()}
        for start in range(0, rows, 20_000):
            n = min(20_000, rows - start)
            states = rng.standard_normal((n + 1, OBS), dtype=np.float32)
            created["observations"][start:start + n] = states[:-1]
            created["next_observations"][start:start + n] = states[1:]
            created["actions"][start:start + n] = rng.uniform(-1, 1, (n, ACT)).astype(np.float32)
            created["rewards"][start:start + n] = rng.standard_normal(n, dtype=np.float32)
            # Smooth frames (a moving gradient), as cameras give, not incompressible noise.
            ramp = (np.arange(FRAME[0])[:, None] + np.arange(FRAME[1])[None, :]).astype(np.uint8)
            frames = (ramp[None, :, :, None] + (np.arange(start, start + n) % 256)[:, None, None, None]).astype(np.uint8)
            created["infos/camera"][start:start + n] = np.broadcast_to(frames, (n, *FRAME))
        ends = np.zeros(rows, bool)
        ends[999::1000] = True
        handle["terminals"] = np.zeros(rows, bool)
        handle["timeouts"] = ends
    return rows


CHILD = textwrap.dedent("""
    import json, os, resource, sys, time
    budget, source, home = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    import h5py, pyarrow.parquet, torch, zarr  # noqa: F401  (imports are not the data: loaded before the limit)
    from bench.datasets import Registry
    from bench.datasets.interop import _formats
    from bench.evaluation.executors import execute_sweep
    from bench.evaluation.store import RunStore
    from bench.evaluation.sweeps import Budget, plan_sweep
    from bench.platform.environments import env_reference
    from bench.platform.settings import Settings
    _formats()
    torch.set_num_threads(2)
    with open("/proc/self/statm") as f:
        virtual = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (virtual + budget, virtual + budget))
    def rss(field="VmHWM"):  # this process's peak (VmHWM) or current (VmRSS) resident memory; ru_maxrss would
        # carry the parent's peak across fork and exec
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))
    out = {"address_space_limit_bytes": virtual + budget, "rss_before_bytes": rss()}
    settings = Settings.load(home=home, database_url=f"sqlite:///{home}/bench.db", storage_url=home + "/datasets",
                             import_part_bytes=budget // 10, load_max_bytes=budget // 4)
    registry = Registry.open(settings)
    started = time.perf_counter()
    dataset_id = registry.import_path(source, "bench/big", env_id="HalfCheetah-v5").id
    out["import_seconds"] = time.perf_counter() - started
    out["rss_after_import_bytes"] = rss()
    started = time.perf_counter()
    out["verify_problems"] = registry.verify(dataset_id)
    out["verify_seconds"] = time.perf_counter() - started
    out["rss_after_verify_bytes"] = rss()
    store = RunStore(registry.engine)
    budget_steps = Budget(offline_steps=300, online_steps=0, eval_every=300, eval_episodes=1)
    specs = plan_sweep(registry, store, "iql", dataset_id, [0], budget_steps, {"compile": "off"}, device="cpu")
    started = time.perf_counter()
    (outcome,) = execute_sweep(specs, settings, store)
    out["train_status"] = outcome.status if outcome.error is None else outcome.error
    out["train_seconds"] = time.perf_counter() - started
    out["offline_updates_per_second"] = outcome.timings.get("offline_updates_per_second")
    out["rss_peak_bytes"] = rss()
    out["version_decoded_bytes"] = registry.load(dataset_id).decoded_bytes
    out["version_stored_bytes"] = registry.show(dataset_id).size_bytes
    print(json.dumps(out))
""")


def measure_big(gigabytes: float, budget_gigabytes: float, work: Path) -> dict:
    source = work / "big.hdf5"
    started = time.perf_counter()
    rows = write_big_d4rl(source, gigabytes)
    written = time.perf_counter() - started
    budget = int(budget_gigabytes * 2**30)
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "PYTHONPATH": str(ROOT)}
    child = subprocess.run([sys.executable, "-c", CHILD, str(budget), str(source), str(work / "home")],
                           capture_output=True, text=True, env=env, cwd=ROOT)
    if child.returncode != 0:
        raise SystemExit(f"the limited import failed:\n{child.stderr[-3000:]}")
    report = json.loads(child.stdout.strip().splitlines()[-1])
    size = source.stat().st_size
    report.update(source_bytes=size, rows=rows, source_written_seconds=written, budget_bytes=budget,
                  source_over_budget=size / budget, import_mb_per_second=size / 2**20 / report["import_seconds"])
    shutil.rmtree(work / "home", ignore_errors=True)  # disk for the server's copies
    report["through_the_api"] = measure_api(source, budget, work)
    return report


def _bench(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "bench.cli", *args], env=env, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"bench {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result


def _peak_rss(pid: int) -> int:
    """A live process's peak resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def measure_api(source: Path, budget: int, work: Path) -> dict:
    """The same file uploaded to a `bench serve api` process (which imports it in parts) and downloaded back."""
    sys.path.insert(0, str(ROOT))
    from bench.testing.services import ApiServer

    server_home = work / "server"
    env = {key: value for key, value in os.environ.items() if not key.startswith("BENCH_")}
    env.update(BENCH_HOME=str(server_home), BENCH_IMPORT_PART_BYTES=str(budget // 10),
               BENCH_LOAD_MAX_BYTES=str(budget // 4), MALLOC_ARENA_MAX="2", PYTHONPATH=str(ROOT))
    _bench(env, "users", "create", "lab")
    token = _bench(env, "tokens", "create", "lab", "--name", "benchmark").stdout.strip()
    server = ApiServer(env).start()
    client = {**{k: v for k, v in env.items() if k != "BENCH_HOME"}, "BENCH_HOME": str(work / "client"),
              "BENCH_SERVER": server.url, "BENCH_TOKEN": token}
    try:
        started = time.perf_counter()
        _bench(client, "datasets", "upload", str(source), "--id", "lab/big", "--env", "HalfCheetah-v5")
        upload_seconds = time.perf_counter() - started
        started = time.perf_counter()
        _bench(client, "datasets", "download", "lab/big", "--out", str(work / "downloaded"))
        download_seconds = time.perf_counter() - started
        downloaded = sum(f.stat().st_size for f in (work / "downloaded").rglob("*") if f.is_file())
        server_peak = _peak_rss(server.process.pid)
    finally:
        server.stop()
    return {"upload_and_import_seconds": upload_seconds, "download_seconds": download_seconds,
            "downloaded_bytes": downloaded, "server_peak_rss_bytes": server_peak}


def measure_sampler(work: Path) -> dict:
    from bench.datasets import Registry
    from bench.datasets.chunk_sampling import ChunkShuffleSampler
    from bench.platform.settings import Settings
    from bench.testing.data import random_trajectories

    home = work / "sampler"
    registry = Registry.open(Settings.load(home=home, database_url=f"sqlite:///{home}/bench.db",
                                           storage_url=str(home / "datasets")))
    rng = np.random.default_rng(0)
    data = random_trajectories(rng, episodes=1000, obs_dim=OBS, act_dim=ACT, min_len=1000, max_len=1000)
    dataset_id = registry.publish(data, "bench/sampler").id
    whole, lazy = registry.load(dataset_id), registry.load(dataset_id, in_memory=False)
    episode_of = np.repeat(np.arange(whole.num_episodes), whole.data.lengths)
    draws = np.random.default_rng(1)

    def uniform():
        rows = draws.integers(0, whole.num_steps, 256)
        batch = whole.transitions(rows)
        return batch, rows

    sampler = ChunkShuffleSampler(lazy, 256, window=4, block_bytes=8 << 20, seed=0)
    stream = iter(sampler)

    def chunked():
        batch = next(stream)
        return batch, batch["step"]

    out = {"transitions": whole.num_steps, "episodes": whole.num_episodes, "blocks": len(sampler.blocks),
           "window_blocks": 4, "block_bytes": 8 << 20}
    for name, draw in (("in_memory_uniform", uniform), ("chunk_shuffled", chunked)):
        for _ in range(50):
            draw()
        distinct, started, n = [], time.perf_counter(), 2000
        for _ in range(n):
            _, rows = draw()
            distinct.append(len(np.unique(episode_of[rows])))
        out[name] = {"batches_per_second": n / (time.perf_counter() - started),
                     "distinct_episodes_per_batch_of_256": float(np.mean(distinct))}
    out["chunk_over_in_memory"] = out["chunk_shuffled"]["batches_per_second"] / out["in_memory_uniform"]["batches_per_second"]
    # The training loop: each minibatch to tensors and one IQL update (CORL's 2x256), as a learner consumes them.
    import torch

    from bench.algorithms import Batch, build_algorithm, make_config

    torch.set_num_threads(2)
    for name, draw in (("in_memory_uniform", uniform), ("chunk_shuffled", chunked)):
        torch.manual_seed(0)
        iql = build_algorithm("iql", make_config("iql", None, {"hidden_dims": (256, 256)}), OBS, ACT)

        def step():
            batch, _ = draw()
            iql.update(Batch(*(torch.from_numpy(np.ascontiguousarray(batch[key], dtype=np.float32))
                               for key in ("obs", "action", "reward", "next_obs", "terminated"))))

        for _ in range(20):
            step()
        started, n = time.perf_counter(), 300
        for _ in range(n):
            step()
        out[name]["training_loop_updates_per_second"] = n / (time.perf_counter() - started)
    out["training_loop_chunk_over_in_memory"] = (out["chunk_shuffled"]["training_loop_updates_per_second"] /
                                                 out["in_memory_uniform"]["training_loop_updates_per_second"])
    started = time.perf_counter()
    rows = sum(len(sampler._decode(block)[1]["action"]) for block in range(4))
    out["block_decode_rows_per_second"] = rows / (time.perf_counter() - started)
    sampler.close()
    registry.close()
    return out


def measure_video(work: Path) -> dict:
    import zarr

    from bench.datasets.video import decode_mp4, encode_mp4

    frames = 2000
    t = np.arange(frames)[:, None, None]
    x = np.arange(64)[None, :, None]
    y = np.arange(64)[None, None, :]
    gray = (127 + 60 * np.sin((x + t) / 7.0) * np.cos((y - t) / 9.0)).astype(np.uint8)
    video = np.repeat(gray[..., None], 3, axis=-1)
    mp4 = encode_mp4(video, fps=30)
    store = zarr.open_group(work / "frames.zarr", mode="w", zarr_format=3)
    from bench.datasets.format import _codec, _IMAGE_CHUNK_FRAMES, _IMAGE_CODEC

    array = store.create_array("camera", shape=video.shape, dtype=np.uint8, chunks=(_IMAGE_CHUNK_FRAMES, *FRAME),
                               compressors=[_codec(_IMAGE_CODEC)])
    array[...] = video
    zarr_bytes = sum(f.stat().st_size for f in (work / "frames.zarr").rglob("*") if f.is_file())

    def rate(read, repeats=3):
        best = 0.0
        for _ in range(repeats):
            started = time.perf_counter()
            got = read()
            best = max(best, len(got) / (time.perf_counter() - started))
        return best

    return {"frames": frames, "frame_shape": list(FRAME), "mp4_bytes": len(mp4), "zarr_zstd_bytes": zarr_bytes,
            "raw_bytes": int(video.nbytes),
            "frames_per_second": {"mp4_decode": rate(lambda: decode_mp4(mp4)),
                                  "zarr_zstd_read": rate(lambda: zarr.open_group(work / "frames.zarr", mode="r")["camera"][...]),
                                  "memory_copy": rate(lambda: video.copy())}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=10.0)
    parser.add_argument("--budget-gigabytes", type=float, default=3.0)
    parser.add_argument("--parts", default="big,sampler,video")
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temporary one)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(dir=args.work))
    report: dict = {"load_average_before": os.getloadavg()[0], "cpus": os.cpu_count()}
    try:
        parts = args.parts.split(",")
        if "sampler" in parts:
            report["sampler"] = measure_sampler(work)
        if "video" in parts:
            report["video"] = measure_video(work)
        if "big" in parts:
            report["big"] = measure_big(args.gigabytes, args.budget_gigabytes, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["load_average_after"] = os.getloadavg()[0]
    report["peak_rss_of_this_process_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
