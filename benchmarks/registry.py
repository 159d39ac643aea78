"""Registry speed and size on a 1M-transition D4RL-layout HDF5 (obs 17, action 6); prints JSON.

    .venv/bin/python benchmarks/registry.py [--transitions 1000000]

Measures import throughput (MB of input file per second, end to end: read, validate, write,
verify, hash, publish), load-to-memory throughput (MB of decoded arrays per second, with every file
checked against the manifest as every load does, and without the check for comparison),
``Dataset.sample(256)`` against plain numpy fancy indexing of the flat D4RL arrays, and the
version's size on disk against the input file. Targets: import >= 100 MB/s, load >= 300 MB/s,
sampling >= 80% of numpy, size <= input.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from bench.datasets import Registry
from bench.datasets.format import read_version
from bench.platform.settings import Settings


def make_input(path: Path, transitions: int, rng: np.random.Generator) -> None:
    """Locomotion-like data: observations drift smoothly within episodes, actions are random."""
    lengths = []
    while sum(lengths) < transitions:
        lengths.append(int(rng.integers(10, 1001)))
    lengths[-1] -= sum(lengths) - transitions
    lengths = [n for n in lengths if n > 0]
    steps = rng.normal(scale=0.05, size=(transitions + len(lengths), 17)).astype(np.float32)
    observations = np.empty_like(steps)
    start = 0
    for n in lengths:
        observations[start:start + n + 1] = np.cumsum(steps[start:start + n + 1], axis=0)
        start += n + 1
    keep = np.ones(len(observations), dtype=bool)
    keep[np.cumsum(np.array(lengths) + 1) - 1] = False
    obs = observations[keep]
    next_obs = observations[np.flatnonzero(keep) + 1]
    ends = np.cumsum(lengths) - 1
    terminals = np.zeros(transitions, dtype=bool)
    timeouts = np.zeros(transitions, dtype=bool)
    terminal_episodes = rng.random(len(lengths)) < 0.7
    terminals[ends[terminal_episodes]] = True
    timeouts[ends[~terminal_episodes]] = True
    with h5py.File(path, "w") as handle:
        handle["observations"] = obs
        handle["next_observations"] = next_obs
        handle["actions"] = rng.uniform(-1, 1, size=(transitions, 6)).astype(np.float32)
        handle["rewards"] = (1.0 + 0.1 * rng.normal(size=transitions)).astype(np.float32)
        handle["terminals"] = terminals
        handle["timeouts"] = timeouts


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transitions", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = tmp / "hopper_random.hdf5"
        make_input(source, args.transitions, rng)
        input_bytes = source.stat().st_size
        registry = Registry.open(Settings.load(home=tmp / "home", database_url=f"sqlite:///{tmp}/home/bench.db",
                                               storage_url=str(tmp / "home" / "datasets")))
        registry.import_path(source, "bench/warmup")
        imports = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            info = registry.import_path(source, "bench/hopper-random")
            imports.append(time.perf_counter() - start)
        import_seconds = min(imports)

        dataset = registry.load(info.id)
        memory_bytes = sum(a.nbytes for a in (dataset.observations, dataset.actions, dataset.rewards,
                                              dataset.data.terminations, dataset.data.truncations))
        load_seconds = best_of(lambda: registry.load(info.id), args.repeats)
        # The same load without checking files against the manifest, to show what verification costs.
        directory = registry.local_dir(info.id)
        unverified_seconds = best_of(lambda: read_version(directory, info.manifest_sha256, verify=False), args.repeats)

        with h5py.File(source, "r") as handle:
            flat = {key: handle[key][...] for key in handle}
        batch, draws = 256, 20_000

        def numpy_sampling() -> None:
            generator = np.random.default_rng(1)
            for _ in range(draws):
                idx = generator.integers(0, args.transitions, size=batch)
                (flat["observations"][idx], flat["actions"][idx], flat["rewards"][idx],
                 flat["next_observations"][idx], flat["terminals"][idx], flat["timeouts"][idx])

        def bench_sampling() -> None:
            generator = np.random.default_rng(1)
            for _ in range(draws):
                dataset.sample(batch, generator)

        numpy_rate = draws * batch / best_of(numpy_sampling, args.repeats)
        bench_rate = draws * batch / best_of(bench_sampling, args.repeats)
        result = {
            "transitions": args.transitions,
            "episodes": info.episodes,
            "input_mb": round(input_bytes / 1e6, 1),
            "import_seconds": round(import_seconds, 3),
            "import_mb_per_s": round(input_bytes / 1e6 / import_seconds, 1),
            "load_seconds": round(load_seconds, 3),
            "load_mb_per_s": round(memory_bytes / 1e6 / load_seconds, 1),
            "load_unverified_mb_per_s": round(memory_bytes / 1e6 / unverified_seconds, 1),
            "sample_256_transitions_per_s": round(bench_rate),
            "numpy_fancy_index_256_transitions_per_s": round(numpy_rate),
            "sampling_vs_numpy": round(bench_rate / numpy_rate, 3),
            "on_disk_mb": round(info.size_bytes / 1e6, 1),
            "size_vs_input": round(info.size_bytes / input_bytes, 3),
            "cpus": os.cpu_count(),
        }
        registry.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
