"""Load on a real `bench serve api` process over loopback; prints JSON.

    .venv/bin/python benchmarks/api_load.py [--backend sqlite-local|postgres-s3] [--seconds 10] [--concurrency 8]

Seeds the server's database with datasets and runs (a leaderboard with 3 algorithms x 6 datasets
x 5 seeds), then measures, each for ``--seconds`` with ``--concurrency`` client threads:
requests/s and p50/p99 latency of reading a leaderboard, searching datasets, showing one, listing
runs; the first (uncached) leaderboard computation; and concurrent uploads (MB/s end to end,
including the server-side import). Clients and server share this machine's 2 cores, so these are
lower bounds of what a server alone would do.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from bench.datasets import Registry
from bench.leaderboards.suites import shipped_suites
from bench.platform.accounts import Accounts
from bench.evaluation.store import RunStore
from bench.platform.settings import Settings
from bench.testing import services
from bench.testing.data import random_trajectories, write_d4rl_file
from bench.web.client import Client


@contextlib.contextmanager
def backend_settings(backend: str, home: Path):
    overrides = {"home": home, "rate_limit_per_minute": 0}
    with contextlib.ExitStack() as stack:
        if backend == "postgres-s3":
            server = stack.enter_context(services.postgres_server())
            overrides["database_url"] = services.create_database(server, "load")
            endpoint = stack.enter_context(services.moto_s3_server())
            os.environ.update(services.s3_env(endpoint))
            services.create_bucket(endpoint, "load")
            overrides["storage_url"] = "s3://load/datasets"
            overrides["storage_options"] = {"client_kwargs": {"endpoint_url": endpoint}}
        else:
            overrides["database_url"] = f"sqlite:///{home / 'bench.db'}"
            overrides["storage_url"] = str(home / "datasets")
        yield Settings.load(**overrides)


def env_of(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    env.update(BENCH_HOME=str(settings.home), BENCH_DATABASE_URL=settings.database_url,
               BENCH_STORAGE_URL=settings.storage_url, BENCH_RATE_LIMIT_PER_MINUTE="0")
    endpoint = settings.storage_options.get("client_kwargs", {}).get("endpoint_url")
    if endpoint:
        env["BENCH_S3_ENDPOINT_URL"] = endpoint
    return env


def seed(registry: Registry, datasets: int) -> str:
    """Datasets named like the sawyer suite's (plus filler), and runs on them from three algorithms."""
    rng = np.random.default_rng(0)
    spec = shipped_suites()["sawyer"]
    names = list(spec.datasets) + [f"lab/filler-{i:04d}" for i in range(max(0, datasets - len(spec.datasets)))]
    versions = {}
    for name in names:
        versions[name] = registry.publish(random_trajectories(rng, episodes=3), name)
    store = RunStore(registry.engine)
    for algorithm_index, algorithm in enumerate(("bc", "awac", "iql")):
        for name in spec.datasets:
            for seed_value in range(5):
                score = float(rng.normal(40 + 15 * algorithm_index, 8))
                point = {"return": score, "normalized_score": score, "success_rate": float(rng.random())}
                store.import_run({
                    "id": f"{algorithm}{abs(hash(name)) % 10**8}{seed_value}", "sweep_id": "load", "algorithm": algorithm,
                    "config": {}, "config_hash": algorithm, "seed": seed_value, "dataset_id": versions[name].id,
                    "dataset_content_sha256": versions[name].content_sha256, "plan": {"eval_episodes": 10},
                    "status": "completed", "results": {"offline": {"final": point, "best": point},
                                                       "online": {"final": point, "best": point}}},
                    [], owner="loader")
    accounts = Accounts(registry.engine)
    accounts.create_user("loader")
    token, _ = accounts.create_token("loader", "load")
    return token


def hammer(url: str, paths: list[str], seconds: float, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def worker(index: int) -> None:
        nonlocal errors
        with httpx.Client(base_url=url, timeout=60) as client:
            i = index
            while time.monotonic() < stop:
                started = time.perf_counter()
                response = client.get(paths[i % len(paths)])
                elapsed = time.perf_counter() - started
                i += concurrency
                with lock:
                    latencies.append(elapsed)
                    errors += response.status_code >= 400

    began = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, range(concurrency)))
    wall = time.monotonic() - began
    array = np.array(latencies) * 1000
    return {"requests": len(latencies), "errors": errors, "requests_per_s": round(len(latencies) / wall, 1),
            "p50_ms": round(float(np.percentile(array, 50)), 2), "p99_ms": round(float(np.percentile(array, 99)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="sqlite-local", choices=["sqlite-local", "postgres-s3"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--uploads", type=int, default=4, help="concurrent uploads of ~20 MB each")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp, backend_settings(args.backend, Path(tmp) / "home") as settings:
        registry = Registry.open(settings)
        token = seed(registry, args.datasets)
        with services.api_server(env_of(settings)) as server:
            url = server.url + "/api/v1"
            started = time.perf_counter()
            httpx.get(f"{url}/leaderboards/sawyer", timeout=120).raise_for_status()
            first_board = time.perf_counter() - started
            results = {"backend": args.backend, "concurrency": args.concurrency, "seconds": args.seconds,
                       "datasets": args.datasets, "runs": 90, "leaderboard_first_compute_s": round(first_board, 2)}
            results["leaderboard"] = hammer(url, ["/leaderboards/sawyer"], args.seconds, args.concurrency)
            results["leaderboard_markdown"] = hammer(url, ["/leaderboards/sawyer/markdown"], args.seconds, args.concurrency)
            results["dataset_search"] = hammer(url, ["/datasets?limit=50", "/datasets?q=filler-01&limit=50",
                                                     "/datasets?namespace=metaworld"], args.seconds, args.concurrency)
            results["dataset_show"] = hammer(url, [f"/datasets/lab/filler-{i:04d}" for i in range(50)], args.seconds,
                                             args.concurrency)
            results["runs_list"] = hammer(url, ["/runs?limit=50", "/runs?algorithm=iql&limit=20"], args.seconds,
                                          args.concurrency)
            files = []
            for i in range(args.uploads):
                data = random_trajectories(np.random.default_rng(100 + i), episodes=50, obs_dim=64, min_len=200, max_len=200)
                files.append(write_d4rl_file(Path(tmp) / f"upload{i}.hdf5", data))
            megabytes = sum(f.stat().st_size for f in files) / 1e6

            def upload(index: int) -> float:
                client = Client(server.url, token)
                began = time.perf_counter()
                client.upload(files[index], "loader/uploads" if index % 2 else f"loader/upload-{index}", scratch=Path(tmp))
                client.close()
                return time.perf_counter() - began

            began = time.perf_counter()
            with ThreadPoolExecutor(args.uploads) as pool:
                durations = list(pool.map(upload, range(args.uploads)))
            wall = time.perf_counter() - began
            results["uploads"] = {"count": args.uploads, "total_mb": round(megabytes, 1), "wall_s": round(wall, 2),
                                  "mb_per_s": round(megabytes / wall, 1),
                                  "slowest_s": round(max(durations), 2)}
        registry.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
