"""What refusing hostile inputs costs a real `bench serve api`: status, seconds and peak server memory; prints JSON.

    .venv/bin/python benchmarks/hostile_inputs.py [--write-docs]

Starts `bench serve api` on SQLite and a local directory in a temporary home, then for each case
uploads the crafted file (docs/deploy.md, "Security") and reads the server's peak resident memory
(VmHWM, reset before each case through /proc/PID/clear_refs). The cases are those of the security
review: HDF5 that declares 1.5 GB of unwritten chunks or 1e12 rows, a 480 MB npz bomb and a lying
.npy header, a tar with a 20 GiB sparse file and one with 100,000 empty files; then, for scale, an
honest upload and anonymous episode and frame reads of a 1M-transition version.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.datasets import Registry
from bench.platform.accounts import Accounts
from bench.platform.settings import Settings
from bench.testing import hostile
from bench.testing.data import random_trajectories, write_d4rl_file
from bench.testing.services import ApiServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from registry import make_input  # noqa: E402  (the same 1M-transition locomotion-like file)


def rss_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def upload(client: httpx.Client, data: bytes, dataset_id: str, filename: str) -> httpx.Response:
    created = client.post("/api/v1/uploads", json={"dataset_id": dataset_id, "filename": filename, "size": len(data),
                                                   "sha256": hashlib.sha256(data).hexdigest()})
    created.raise_for_status()
    upload_id = created.json()["id"]
    client.put(f"/api/v1/uploads/{upload_id}", params={"offset": 0}, content=data).raise_for_status()
    return client.post(f"/api/v1/uploads/{upload_id}/complete")


def measure(pid: int, name: str, size: int, call) -> dict:
    reset_peak(pid)
    before = rss_mb(pid, "VmRSS")
    start = time.perf_counter()
    response = call()
    seconds = time.perf_counter() - start
    detail = response.json().get("detail", "") if "json" in response.headers.get("content-type", "") else ""
    return {"case": name, "input_bytes": size, "status": response.status_code, "seconds": round(seconds, 3),
            "rss_before_mb": round(before, 1), "peak_rss_mb": round(rss_mb(pid, "VmHWM"), 1),
            "peak_over_before_mb": round(rss_mb(pid, "VmHWM") - before, 1),
            "detail": detail if isinstance(detail, str) else json.dumps(detail)[:200]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write-docs", action="store_true", help="rewrite the table in docs/results.md")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        home = tmp / "home"
        settings = Settings.load(home=home, database_url=f"sqlite:///{home}/bench.db", storage_url=str(home / "datasets"))
        registry = Registry.open(settings)
        accounts = Accounts(registry.engine)
        accounts.create_user("alice", False)
        token, _ = accounts.create_token("alice", "bench")
        big = tmp / "big.hdf5"
        make_input(big, 1_000_000, np.random.default_rng(0))
        version = registry.import_path(big, "alice/big")
        registry.close()

        files = {}
        files["hdf5 1.5 GB of unwritten chunks"] = (hostile.write_d4rl(tmp / "chunks.hdf5", hostile.empty_chunks), "x.hdf5")
        files["hdf5 declaring 1e12 rows"] = (hostile.write_d4rl(tmp / "rows.hdf5", hostile.declared_rows), "x.hdf5")
        files["npz bomb (480 MB of zeros)"] = (hostile.npz_bomb(tmp / "bomb.npz", 480), "x.npz")
        files["npz header declaring 1e12 rows"] = (hostile.npz_lying_header(tmp / "lying.npz"), "x.npz")
        (tmp / "sparse.tar").write_bytes(hostile.sparse_tar(20 << 30))
        files["tar with a 20 GiB sparse file"] = (tmp / "sparse.tar", "x.tar")
        (tmp / "many.tar").write_bytes(hostile.many_files_tar(100_000))
        files["tar of 100,000 empty files"] = (tmp / "many.tar", "x.tar")
        honest = write_d4rl_file(tmp / "honest.hdf5", random_trajectories(np.random.default_rng(1), episodes=200,
                                                                          min_len=100, max_len=200))
        files["honest D4RL upload (for scale)"] = (honest, "honest.hdf5")

        env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
        env.update(BENCH_HOME=str(home), BENCH_DATABASE_URL=settings.database_url, BENCH_STORAGE_URL=settings.storage_url)
        server = ApiServer(env).start()
        try:
            pid = server.process.pid
            # `bench serve api` is a console script; the server is that process (uvicorn runs in it).
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=600) as client:
                client.get("/api/v1/datasets")  # warm the first request path
                for index, (name, (path, filename)) in enumerate(files.items()):
                    data = path.read_bytes()
                    results.append(measure(pid, name, len(data),
                                           lambda: upload(client, data, f"alice/case{index}", filename)))
                anonymous = httpx.Client(base_url=server.url, timeout=600)
                results.append(measure(pid, f"anonymous episode 0 of {version.id} ({version.steps:,} steps)", 0,
                                       lambda: anonymous.get(f"/api/v1/datasets/{version.id}/-/episodes/0")))
                results.append(measure(pid, "anonymous episodes 0:10 manifest (a subset built)", 0,
                                       lambda: anonymous.get(f"/api/v1/datasets/{version.id}/-/episodes",
                                                             params={"start": 0, "stop": 10})))
        finally:
            server.stop()
    report = {"cases": results, "cpus": os.cpu_count(), "version_on_disk_mb": round(version.size_bytes / 1e6, 1)}
    print(json.dumps(report, indent=2))
    if args.write_docs:
        write_docs(results)


def write_docs(results: list[dict]) -> None:
    from pixel_matrix import write_marked_block

    lines = ["| case | input | status | seconds | server peak RSS (MB) | peak over before (MB) |",
             "|---|---|---|---|---|---|"]
    for r in results:
        size = f"{r['input_bytes'] / 1024:.0f} KB" if r["input_bytes"] else "-"
        lines.append(f"| {r['case']} | {size} | {r['status']} | {r['seconds']} | {r['peak_rss_mb']} | "
                     f"{r['peak_over_before_mb']} |")
    write_marked_block("hostile-inputs", "\n".join(lines))


if __name__ == "__main__":
    main()
