"""Executors: run the planned runs of a sweep, with the same records whichever is used.

  local    one run after another in this process
  process  a local process pool, one run per core (torch threads split between them)
  ray      Ray tasks on a local or existing cluster (``ray_address``); workers read the dataset
           through the storage URL and return their records, which the driver writes
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from bench.errors import InvalidInput
from bench.evaluation.specs import ProgressCallback, RunOutcome, RunSpec
from bench.evaluation.kinds import execute_run
from bench.evaluation.store import EventLog, RunStore
from bench.platform import db
from bench.platform.db import RunState
from bench.platform.settings import Settings

EXECUTORS = ("local", "process", "ray")


def execute_sweep(specs: list[RunSpec], settings: Settings, store: RunStore, executor: str = "local",
                  ray_address: str | None = None, progress: ProgressCallback | None = None,
                  resume: bool = False) -> list[RunOutcome]:
    if executor == "local":
        outcomes = []
        for spec in specs:
            outcomes.append(execute_run(spec, settings, store, progress, resume))
            if outcomes[-1].status == RunState.INTERRUPTED:
                # Ctrl-C stops the sweep: the remaining runs stay pending and can be resumed.
                break
        return outcomes
    if executor == "process":
        return _execute_in_processes(specs, settings, progress, resume)
    if executor == "ray":
        return _execute_on_ray(specs, settings, store, ray_address, resume)
    raise InvalidInput(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")


def _process_worker(spec_json: dict[str, Any], settings: Settings, progress_queue, resume: bool) -> dict[str, Any]:
    engine = db.make_engine(settings.database_url)
    try:
        store = RunStore(engine)
        callback = (lambda *args: progress_queue.put(args)) if progress_queue is not None else None
        outcome = execute_run(RunSpec.from_json(spec_json), settings, store, callback, resume)
        return vars(outcome)
    finally:
        engine.dispose()


def _execute_in_processes(specs: list[RunSpec], settings: Settings, progress: ProgressCallback | None,
                          resume: bool) -> list[RunOutcome]:
    workers = max(1, min(len(specs), os.cpu_count() or 1))
    context = multiprocessing.get_context("forkserver")
    manager = context.Manager() if progress is not None else None
    progress_queue = manager.Queue() if manager is not None else None
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            try:
                progress(*progress_queue.get(timeout=0.2))
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return

    drainer = threading.Thread(target=drain, daemon=True) if progress_queue is not None else None
    if drainer:
        drainer.start()
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(_process_worker, spec.to_json(), settings, progress_queue, resume) for spec in specs]
            outcomes = []
            for future in futures:
                try:
                    outcomes.append(RunOutcome(**future.result()))
                except KeyboardInterrupt:
                    # The workers received the same Ctrl-C: wait for them to checkpoint and report.
                    outcomes.append(RunOutcome(**future.result()))
            return outcomes
    finally:
        stop.set()
        if drainer:
            drainer.join(timeout=2)
        if manager is not None:
            manager.shutdown()


def _ray_worker(spec_json: dict[str, Any], settings_json: dict[str, Any], resume: bool):
    settings = Settings(**settings_json)
    log = EventLog()
    outcome = execute_run(RunSpec.from_json(spec_json), settings, log, None, resume)
    return log.events, vars(outcome)


def _execute_on_ray(specs: list[RunSpec], settings: Settings, store: RunStore, address: str | None,
                    resume: bool) -> list[RunOutcome]:
    try:
        import ray
    except ImportError as exc:
        raise InvalidInput("the ray executor needs ray: pip install 'ray[default]'") from exc
    from pathlib import Path

    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, log_to_driver=False, include_dashboard=False)
    try:
        remote = ray.remote(num_cpus=1)(_ray_worker)
        settings_json = {"home": Path(settings.home), "database_url": settings.database_url,
                         "storage_url": settings.storage_url, "storage_options": settings.storage_options}
        refs = {remote.remote(spec.to_json(), settings_json, resume): spec for spec in specs}
        for spec in specs:
            store.mark(spec.run_id, RunState.RUNNING)
        outcomes: dict[str, RunOutcome] = {}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                spec = refs[ref]
                try:
                    events, outcome = ray.get(ref)
                except Exception as exc:  # the worker died: record it, keep the others
                    store.finished(spec.run_id, RunState.FAILED, {}, {}, error=f"ray worker failed: {exc}")
                    outcomes[spec.run_id] = RunOutcome(spec.run_id, RunState.FAILED, {}, {}, str(exc))
                    continue
                EventLog.replay(events, store)
                outcomes[spec.run_id] = RunOutcome(**outcome)
        return [outcomes[spec.run_id] for spec in specs]
    finally:
        if started_here:
            ray.shutdown()
