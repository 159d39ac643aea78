"""Page load times of the web UI in headless chromium with 1,000 datasets and 10,000 runs; prints JSON.

    .venv/bin/python benchmarks/ui_load.py [--datasets 1000] [--runs 10000] [--repeats 3]

Seeds a fresh SQLite home (datasets published for real; runs inserted in bulk, 40 datasets x
algorithms x seeds), starts `bench serve api` and `bench serve ui`, and for each page measures the
time from navigation until the content that matters is on screen (a dataset's name, a leaderboard
row, a run id, a frame). Target: under 2 s per page. The browser, the UI and the API share this
machine's 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from bench.datasets import Registry
from bench.leaderboards.suites import Suites
from bench.platform.accounts import Accounts
from bench.platform.db import RunRow, RunState
from bench.platform.settings import Settings
from bench.testing.data import random_trajectories, write_robot_folder
from bench.testing.services import ApiServer, UiServer


def seed(registry: Registry, datasets: int, runs: int) -> None:
    rng = np.random.default_rng(0)
    infos = [registry.publish(random_trajectories(rng, episodes=3, image_shape=(16, 16, 3) if i == 0 else None),
                              f"lab{i % 10}/data-{i:04d}", tags=["demos" if i % 2 else "play"]) for i in range(datasets - 1)]
    write_robot_folder(registry.settings.home / "log", lengths=(6, 6))
    registry.import_path(registry.settings.home / "log", "lab0/robot-log")
    Accounts(registry.engine).create_user("bench")
    Suites(registry.engine).create({"name": "load", "datasets": [i.id.rsplit("-v", 1)[0] for i in infos[:20]]},
                                   Accounts(registry.engine).principal_of("bench"))
    rows, algorithms = [], ["bc", "awac", "iql", "cql", "bc-10%"]
    for n in range(runs):
        info = infos[n % 40]
        value = float(rng.normal(50, 10))
        point = {"return": value, "normalized_score": value, "success_rate": 0.5}
        rows.append(dict(id=f"r{n:07d}", sweep_id="load", algorithm=algorithms[(n // 40) % 5], config={}, config_hash="h",
                         seed=n // 200, dataset_id=info.id, dataset_content_sha256=info.content_sha256,
                         env_name=None, plan={"eval_episodes": 10, "offline_steps": 100, "online_steps": 100},
                         status=RunState.COMPLETED, results={"offline": {"final": point, "best": point},
                                                             "online": {"final": point, "best": point}}))
    with registry.engine.begin() as connection:
        start = dt.datetime.now(dt.timezone.utc)
        connection.execute(sa.insert(RunRow), [{**row, "created_at": start + dt.timedelta(seconds=n)}
                                               for n, row in enumerate(rows)])


PAGES = [  # path, text that must be on screen
    ("/", "lab0/data-0000-v1"),
    ("/?q=data-09", "data-0990-v1"),
    ("/dataset?id=lab0/data-0000", "Episodes"),
    ("/robot-logs", "lab0/robot-log-v1"),
    ("/leaderboards?name=load", "IQM"),
    ("/runs", "r00"),
    ("/run?id=r0000001", "Provenance"),
    ("/upload", "Upload a dataset"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ui-load-") as tmp:
        home = Path(tmp) / "home"
        settings = Settings.load(home=home, database_url=f"sqlite:///{home / 'bench.db'}",
                                 storage_url=str(home / "datasets"), rate_limit_per_minute=0)
        registry = Registry.open(settings)
        began = time.perf_counter()
        seed(registry, args.datasets, args.runs)
        seeding = time.perf_counter() - began
        env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
        env.update(BENCH_HOME=str(home), BENCH_DATABASE_URL=settings.database_url,
                   BENCH_STORAGE_URL=settings.storage_url, BENCH_RATE_LIMIT_PER_MINUTE="0")
        api = ApiServer(env).start()
        ui = UiServer(env, api.url).start()
        url = ui.url
        from playwright.sync_api import sync_playwright

        results = {}
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url + "/")  # the first visit starts the Streamlit session and imports its modules
                page.get_by_text(PAGES[0][1]).first.wait_for(timeout=60_000)
                for path, text in PAGES:
                    times = []
                    for _ in range(args.repeats):
                        started = time.perf_counter()
                        page.goto(url + path)
                        page.get_by_text(text).first.wait_for(timeout=60_000)
                        times.append(time.perf_counter() - started)
                    results[path] = {"median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3)}
                browser.close()
        finally:
            ui.stop()
            api.stop()
        total, _ = registry.search(readable=None, limit=1)
        with registry.engine.connect() as connection:
            run_count = connection.execute(sa.text("SELECT count(*) FROM runs")).scalar()
        registry.close()
    print(json.dumps({"datasets": total, "runs": run_count, "seed_seconds": round(seeding, 1), "pages": results,
                      "all_under_2s": all(r["max_s"] < 2.0 for r in results.values())}, indent=2))


if __name__ == "__main__":
    main()
