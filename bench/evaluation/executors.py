"""Executors: run the planned runs of a sweep, with the same records whichever is used.

  local    one run after another in this process
  process  a local process pool, one run per core (torch threads split between them)
  ray      Ray tasks on a local or existing cluster (``ray_address``); workers read the dataset
           through the storage URL and return their records, which the driver writes. Each task asks
           for ``RayResources``: CPUs and GPUs per run, fractions allowed (``--gpus-per-run 0.25`` packs
           four runs on a GPU); Ray hands a task its GPUs through CUDA_VISIBLE_DEVICES, where ``--device
           auto`` or ``cuda`` finds them
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from bench.errors import InvalidInput
from bench.evaluation.specs import ProgressCallback, RunOutcome, RunSpec
from bench.evaluation.kinds import execute_group, execute_run
from bench.evaluation.store import EventLog, RunStore
from bench.platform import db
from bench.platform.db import RunState
from bench.platform.settings import Settings

EXECUTORS = ("local", "process", "ray")


@dataclass(frozen=True)
class RayResources:
    """What each run asks a Ray cluster for (``--cpus-per-run``, ``--gpus-per-run``)."""

    cpus: float = 1.0
    gpus: float = 0.0

    def __post_init__(self):
        if self.cpus <= 0 or self.gpus < 0:
            raise InvalidInput("--cpus-per-run must be positive and --gpus-per-run at least 0")
        if self.gpus > 1 and self.gpus != int(self.gpus):  # Ray's rule: fractions only below one GPU
            raise InvalidInput(f"--gpus-per-run above 1 must be a whole number of GPUs, not {self.gpus:g}")

    def check(self, executor: str, device: str) -> None:
        """Refuse, before any run is recorded, requests for another executor or that would not reach the GPU."""
        if executor != "ray" and (self.cpus, self.gpus) != (1.0, 0.0):
            raise InvalidInput("--cpus-per-run and --gpus-per-run are requests to a Ray cluster: use --executor ray")
        if executor == "ray" and device.startswith("cuda") and self.gpus == 0:
            raise InvalidInput(f"--device {device} on Ray: a run reaches a GPU only when it asks for one; "
                               f"add --gpus-per-run (e.g. 1, or 0.25 to pack four runs on a GPU)")


def execute_sweep(specs: list[RunSpec], settings: Settings, store: RunStore, executor: str = "local",
                  ray_address: str | None = None, progress: ProgressCallback | None = None,
                  resume: bool = False, resources: RayResources = RayResources()) -> list[RunOutcome]:
    # The units each executor runs: one run each, or a seed group (``--batch-seeds``) as one unit. A resumed
    # member of a group continues alone.
    grouped = not resume and len(specs) > 1 and all(s.batched_seeds == len(specs) for s in specs)
    units = [specs] if grouped else [[spec] for spec in specs]
    if executor == "local" and grouped:
        return execute_group(specs, settings, store, progress)
    if executor == "local":
        outcomes = []
        for spec in specs:
            outcomes.append(execute_run(spec, settings, store, progress, resume))
            if outcomes[-1].status == RunState.INTERRUPTED:
                # Ctrl-C stops the sweep: the remaining runs stay pending and can be resumed.
                break
        return outcomes
    if executor == "process":
        return _execute_in_processes(units, settings, progress, resume)
    if executor == "ray":
        return _execute_on_ray(units, settings, store, ray_address, resume, resources)
    raise InvalidInput(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")


def _execute_unit(unit: list[RunSpec], settings: Settings, recorder, progress: ProgressCallback | None,
                  resume: bool) -> list[RunOutcome]:
    if len(unit) > 1:
        return execute_group(unit, settings, recorder, progress)
    return [execute_run(unit[0], settings, recorder, progress, resume)]


def _process_worker(unit_json: list[dict[str, Any]], settings: Settings, progress_queue,
                    resume: bool) -> list[dict[str, Any]]:
    engine = db.make_engine(settings.database_url)
    try:
        store = RunStore(engine)
        callback = (lambda *args: progress_queue.put(args)) if progress_queue is not None else None
        unit = [RunSpec.from_json(spec) for spec in unit_json]
        return [vars(outcome) for outcome in _execute_unit(unit, settings, store, callback, resume)]
    finally:
        engine.dispose()


def _execute_in_processes(units: list[list[RunSpec]], settings: Settings, progress: ProgressCallback | None,
                          resume: bool) -> list[RunOutcome]:
    workers = max(1, min(len(units), os.cpu_count() or 1))
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
            futures = [pool.submit(_process_worker, [spec.to_json() for spec in unit], settings, progress_queue, resume)
                       for unit in units]
            outcomes = []
            for future in futures:
                try:
                    outcomes.extend(RunOutcome(**outcome) for outcome in future.result())
                except KeyboardInterrupt:
                    # The workers received the same Ctrl-C: wait for them to checkpoint and report.
                    outcomes.extend(RunOutcome(**outcome) for outcome in future.result())
            return outcomes
    finally:
        stop.set()
        if drainer:
            drainer.join(timeout=2)
        if manager is not None:
            manager.shutdown()


def _ray_worker(unit_json: list[dict[str, Any]], settings_json: dict[str, Any], resume: bool):
    settings = Settings(**settings_json)
    log = EventLog()
    outcomes = _execute_unit([RunSpec.from_json(spec) for spec in unit_json], settings, log, None, resume)
    return log.events, [vars(outcome) for outcome in outcomes]


@contextlib.contextmanager
def ray_session(executor: str, address: str | None, resources: RayResources = RayResources()) -> Iterator[None]:
    """For the ray executor: connected to the cluster (``address``, or a local one), its resources checked against
    what each run asks for, so that a sweep Ray could never place is refused before any run is recorded.
    Other executors: nothing."""
    if executor != "ray":
        yield
        return
    try:
        import ray  # optional: only the ray executor needs it
    except ImportError as exc:
        raise InvalidInput("the ray executor needs ray: pip install 'ray[default]'") from exc
    started_here = not ray.is_initialized()
    if started_here:  # quietly: a refusal below is one line on stderr, not Ray's connection log around it
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, log_to_driver=False, include_dashboard=False,
                     logging_level=logging.WARNING)
    try:
        cluster = ray.cluster_resources()
        for name, wanted in (("CPU", resources.cpus), ("GPU", resources.gpus)):
            if wanted > cluster.get(name, 0.0):  # Ray would wait forever for a node that has them
                raise InvalidInput(f"each run asks for {wanted:g} {name}(s) and the Ray cluster has "
                                   f"{cluster.get(name, 0.0):g}")
        yield
    finally:
        if started_here:
            ray.shutdown()


def _execute_on_ray(units: list[list[RunSpec]], settings: Settings, store: RunStore, address: str | None,
                    resume: bool, resources: RayResources) -> list[RunOutcome]:
    with ray_session("ray", address, resources):
        import ray  # optional; ray_session has checked it is installed

        remote = ray.remote(num_cpus=resources.cpus, num_gpus=resources.gpus)(_ray_worker)
        settings_json = {"home": Path(settings.home), "database_url": settings.database_url,
                         "storage_url": settings.storage_url, "storage_options": settings.storage_options}
        refs = {remote.remote([spec.to_json() for spec in unit], settings_json, resume): unit for unit in units}
        specs = [spec for unit in units for spec in unit]
        for spec in specs:
            store.mark(spec.run_id, RunState.RUNNING)
        outcomes: dict[str, RunOutcome] = {}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                unit = refs[ref]
                try:
                    events, finished = ray.get(ref)
                except Exception as exc:  # the worker died: record it, keep the others
                    for spec in unit:
                        store.finished(spec.run_id, RunState.FAILED, {}, {}, error=f"ray worker failed: {exc}")
                        outcomes[spec.run_id] = RunOutcome(spec.run_id, RunState.FAILED, {}, {}, str(exc))
                    continue
                EventLog.replay(events, store)
                outcomes.update((outcome["run_id"], RunOutcome(**outcome)) for outcome in finished)
        return [outcomes[spec.run_id] for spec in specs]
