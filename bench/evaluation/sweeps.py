"""Sweeps: plan the runs of one ``bench evaluate`` (seeds x one config) and execute them with an executor.

Executors:
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
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench.algorithms import config_hash, config_to_json, get_algorithm, make_config
from bench.algorithms.config import domain_of
from bench.datasets.registry import Registry
from bench.errors import InvalidInput, NotFound
from bench.platform import db
from bench.platform.db import RunState
from bench.evaluation.harness import ProgressCallback, RunOutcome, RunSpec, code_version, default_torch_threads
from bench.evaluation.kinds import execute_run
from bench.evaluation.store import EventLog, RunStore
from bench.platform.settings import Settings

EXECUTORS = ("local", "process", "ray")


@dataclass
class Budget:
    """How long each run trains (updates offline, environment steps online) and how often it is evaluated."""

    offline_steps: int
    online_steps: int
    eval_every: int
    eval_episodes: int
    log_every: int = 1000

    def validate(self) -> None:
        if self.offline_steps < 0 or self.online_steps < 0:
            raise InvalidInput("--offline-steps and --online-steps must be >= 0")
        if self.eval_every <= 0 or self.eval_episodes <= 0 or self.log_every <= 0:
            raise InvalidInput("--eval-every, --eval-episodes and the log interval must be positive")


ONLINE_ENVS = ("dataset", "held-out")
HELD_OUT_SCENE_SEED = 900_000


def environment_overrides(env: dict[str, Any], online_env: str, task: str | None, seed: int) -> dict[str, Any] | None:
    """Keyword arguments over the dataset's environment for a run's online phase and evaluation.

    ``held-out`` asks for a new environment E_new ~ p(E) from the shapes and colours held out of
    the data (dissertation ch. 9.5.3): one scene per seed, the same for every algorithm.
    """
    if online_env not in ONLINE_ENVS:
        raise InvalidInput(f"--online-env must be one of {', '.join(ONLINE_ENVS)}, not {online_env!r}")
    scene_family = "scene_split" in (env.get("kwargs") or {})
    if (online_env == "held-out" or task) and not scene_family:
        raise InvalidInput(f"environment {env.get('name') or env.get('id')} has no family of scenes: "
                           "--online-env held-out and --task apply to tabletop datasets")
    if not scene_family:
        return None
    overrides: dict[str, Any] = {"task": task} if task else {}
    from bench.platform.envs.tabletop import TASK_HORIZONS

    if task in TASK_HORIZONS:  # a multi-stage task runs longer than the dataset's episodes
        overrides["max_episode_steps"] = TASK_HORIZONS[task]
    if online_env == "held-out":
        overrides.update(scene_split="held-out", scene_seed=HELD_OUT_SCENE_SEED + int(seed))
    if overrides:
        from bench.platform.environments import make_env

        make_env(env, **overrides).close()  # an unknown task fails here, before any run is recorded
    return overrides or None


def plan_sweep(registry: Registry, store: RunStore, algorithm: str, dataset_id: str, seeds: list[int],
               budget: Budget, overrides: dict[str, str] | None = None, executor: str = "local",
               online_env: str = "dataset", task: str | None = None) -> list[RunSpec]:
    """Resolve the dataset and config, then record one pending run per seed."""
    spec = get_algorithm(algorithm)
    budget.validate()
    if executor not in EXECUTORS:
        raise InvalidInput(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if not seeds:
        raise InvalidInput("at least one seed is needed")
    info = registry.show(dataset_id)
    manifest = registry.manifest(info.id)
    env = manifest.get("env")
    if not env or not env.get("id"):
        raise InvalidInput(f"{info.id} has no environment reference, so it cannot be evaluated online or offline")
    env_name = env.get("name")
    family = env_name.split("/")[0] if env_name and "/" in env_name else None
    config = make_config(algorithm, domain_of(family), overrides)
    if spec.algorithm_class.run_kind in ("pixels", "planning") and not task:
        raise InvalidInput(f"{algorithm} is evaluated on a goal-image task: pass --task (tabletop: drawer-open, "
                           "button-press, object-in-tray, object-lift, drawer-close, button-then-tray, ...)")
    if spec.algorithm_class.run_kind == "state-planning" and family != "ogbench":
        raise InvalidInput(f"{algorithm} plans between observations: it needs an OGBench goal-conditioned dataset, "
                           f"and {info.id} is not one")
    reference = None
    if env_name:
        try:
            reference = registry.environments.get(env_name).reference_pair()
        except NotFound:
            reference = None
    sweep_id = uuid.uuid4().hex[:12]
    version = code_version()
    parallel = len(seeds) if executor != "local" else 1
    specs, rows = [], []
    for seed in seeds:
        run_id = uuid.uuid4().hex[:12]
        specs.append(RunSpec(
            run_id=run_id, algorithm=spec.name, config=config_to_json(config), seed=int(seed), dataset_id=info.id,
            storage_path=info.storage_path, manifest_sha256=info.manifest_sha256,
            offline_steps=budget.offline_steps, online_steps=budget.online_steps, eval_every=budget.eval_every,
            eval_episodes=budget.eval_episodes, reference=tuple(reference) if reference else None,
            log_every=budget.log_every, env_overrides=environment_overrides(env, online_env, task, seed),
            torch_threads=default_torch_threads(min(parallel, os.cpu_count() or 1)) if executor != "local" else None))
        rows.append({"id": run_id, "sweep_id": sweep_id, "algorithm": spec.name, "config": config_to_json(config),
                     "config_hash": config_hash(spec.name, config), "seed": int(seed), "dataset_id": info.id,
                     "dataset_content_sha256": info.content_sha256, "env_name": env_name,
                     "plan": {**specs[-1].to_json(), "executor": executor, "domain": domain_of(family)},
                     "code_version": version})
    store.create(rows)
    return specs


def spec_for_resume(store: RunStore, run_id: str) -> RunSpec:
    info = store.get(run_id)
    if info.status == RunState.COMPLETED:
        raise InvalidInput(f"run {run_id} is already completed")
    if info.status == RunState.RUNNING:
        raise InvalidInput(f"run {run_id} is running; interrupt it first, or, if its worker died, `bench runs mark-failed {run_id}`")
    fields = {key: value for key, value in info.plan.items() if key in RunSpec.__dataclass_fields__}
    spec = RunSpec.from_json(fields)
    if spec.reference is not None:
        spec.reference = tuple(spec.reference)
    return spec


# -- executors ---------------------------------------------------------------------------------------
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


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--set expects key=value, got {pair!r}")
        overrides[key.strip()] = value
    return overrides


def seeds_from(count: int | None, explicit: str | None) -> list[int]:
    if explicit:
        try:
            return [int(s) for s in explicit.split(",") if s.strip()]
        except ValueError:
            raise InvalidInput(f"--seed-list expects integers separated by commas, got {explicit!r}") from None
    if count is None or count < 1:
        raise InvalidInput("--seeds must be at least 1")
    return list(range(count))

