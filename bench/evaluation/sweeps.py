"""Sweeps: plan the runs of one ``bench evaluate`` (seeds x one config), the environment overrides of a tabletop
task, and resuming; executors.py runs what is planned."""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from typing import Any

from bench.algorithms import config_hash, config_to_json, get_algorithm, make_config
from bench.algorithms.config import AlgorithmConfig, domain_of, family_of
from bench.algorithms.devices import check_device_name, check_precision, resolve_device
from bench.datasets.registry import Registry
from bench.errors import InvalidInput, NotFound
from bench.datasets.spaces import space_from_json
from bench.evaluation.controllers import controller_for, source_run
from bench.evaluation.executors import EXECUTORS, RayResources
from bench.evaluation.layouts import ObservationLayout
from bench.evaluation.specs import RunSpec, code_version, default_torch_threads
from bench.evaluation.store import RunStore
from bench.platform.db import RunState
from bench.platform.environments import make_env
from bench.platform.envs.tabletop import TASK_HORIZONS


@dataclasses.dataclass
class Budget:
    """How long each run trains (updates offline, environment steps online) and how often it is evaluated."""

    offline_steps: int
    online_steps: int
    eval_every: int
    eval_episodes: int
    log_every: int = 1000
    # Evaluations at these online steps besides every ``eval_every``: dense points around the switch
    # from offline to online, where fine-tuning dips or holds (dissertation ch. 7).
    online_evals_at: tuple[int, ...] = ()

    def validate(self) -> None:
        if self.offline_steps < 0 or self.online_steps < 0:
            raise InvalidInput("--offline-steps and --online-steps must be >= 0")
        if self.eval_every <= 0 or self.eval_episodes <= 0 or self.log_every <= 0:
            raise InvalidInput("--eval-every, --eval-episodes and the log interval must be positive")
        if any(not 0 < step <= self.online_steps for step in self.online_evals_at):
            raise InvalidInput(f"--online-evals-at takes online steps in 1..{self.online_steps} (--online-steps)")


ONLINE_ENVS = ("dataset", "held-out")
HELD_OUT_SCENE_SEED = 900_000


def environment_overrides(env: dict[str, Any], online_env: str, task: str | None, seed: int,
                          options: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Keyword arguments over the dataset's environment for a run's online phase and evaluation.

    ``held-out`` asks for a new environment E_new ~ p(E) from the shapes and colours held out of
    the data (dissertation ch. 9.5.3): one scene per seed, the same for every algorithm. ``options``
    are the user's (``--env-set``): the environment's own keyword arguments (block rotation, goal
    noise) and eq. 24's ``actuation_bias`` / ``actuation_noise``; each run records them in its plan.
    """
    if online_env not in ONLINE_ENVS:
        raise InvalidInput(f"--online-env must be one of {', '.join(ONLINE_ENVS)}, not {online_env!r}")
    scene_family = "scene_split" in (env.get("kwargs") or {})
    if (online_env == "held-out" or task) and not scene_family:
        raise InvalidInput(f"environment {env.get('name') or env.get('id')} has no family of scenes: "
                           "--online-env held-out and --task apply to tabletop datasets")
    overrides: dict[str, Any] = {"task": task} if task else {}
    if task in TASK_HORIZONS:  # a multi-stage task runs longer than the dataset's episodes
        overrides["max_episode_steps"] = TASK_HORIZONS[task]
    if online_env == "held-out":
        overrides.update(scene_split="held-out", scene_seed=HELD_OUT_SCENE_SEED + int(seed))
    overrides.update(options or {})
    if overrides:
        make_env(env, **overrides).close()  # an unknown task or option fails here, before any run is recorded
    return overrides or None


def evaluation_overrides(env: dict[str, Any], options: dict[str, Any] | None,
                         eval_options: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``--eval-env-set`` options, checked over the practice options before any run is recorded."""
    if not eval_options:
        return None
    make_env(env, **{**(options or {}), **eval_options}).close()
    return dict(eval_options)


def plan_sweep(registry: Registry, store: RunStore, algorithm: str, dataset_id: str, seeds: list[int],
               budget: Budget, overrides: dict[str, str] | None = None, executor: str = "local",
               online_env: str = "dataset", task: str | None = None, reuse_models: bool = True,
               env_options: dict[str, Any] | None = None,
               eval_env_options: dict[str, Any] | None = None, device: str = "auto",
               resources: RayResources = RayResources(), precision: str = "fp32",
               batch_seeds: bool = False) -> list[RunSpec]:
    """Resolve the dataset and config, then record one pending run per seed."""
    spec = get_algorithm(algorithm)
    budget.validate()
    if executor not in EXECUTORS:
        raise InvalidInput(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    device = check_device_name(device)
    here = resolve_device(device) if executor != "ray" else None  # Ray workers are other machines: they check
    precision = check_precision(precision, here)
    resources.check(executor, device)
    if batch_seeds:
        check_batch_seeds(spec, seeds)
    if not seeds:
        raise InvalidInput("at least one seed is needed")
    info = registry.show(dataset_id)
    manifest = registry.manifest(info.id)
    env = manifest.get("env")
    if not env or not env.get("id"):
        raise InvalidInput(f"{info.id} has no environment reference, so it cannot be evaluated online or offline; "
                           f"import it again with --env NAME (a catalogue name from `bench envs list`, or a "
                           f"gymnasium id)")
    env_name = env.get("name")
    family = family_of(env_name)
    config = make_config(algorithm, domain_of(family), overrides)
    if spec.algorithm_class.run_kind in ("pixels", "planning") and not task:
        raise InvalidInput(f"{algorithm} is evaluated on a goal-image task: pass --task (tabletop: drawer-open, "
                           "button-press, object-in-tray, object-lift, drawer-close, button-then-tray, ...)")
    if spec.algorithm_class.run_kind == "state-planning" and family != "ogbench":
        raise InvalidInput(f"{algorithm} plans between observations: it needs an OGBench goal-conditioned dataset, "
                           f"and {info.id} is not one")
    if config.demonstration_start_share() > 0 and "infos/sim_state" not in manifest.get("arrays", {}):
        raise InvalidInput(f"resets to demonstration states need the simulator's state with each observation "
                           f"(infos/sim_state); {info.id} has none (the fetch/stack* recipes record it)")
    if eval_env_options and spec.algorithm_class.run_kind != "states":
        raise InvalidInput(f"--eval-env-set: {algorithm} is evaluated in the environment it practises in; "
                           f"only runs on states take evaluation options")
    if spec.algorithm_class.run_kind in ("pixels", "planning"):
        read_on_states = [name for name, default in STATE_RUN_FIELDS.items() if getattr(config, name) != default]
        if read_on_states:
            raise InvalidInput(f"{', '.join(read_on_states)}: only runs on states read "
                               f"{'it' if len(read_on_states) == 1 else 'them'}; {algorithm} learns from images "
                               f"through its representation")
    if config.observation_keys:  # keys the observations do not have fail here, before a run is recorded
        ObservationLayout.of(env, space_from_json(manifest["observation_space"]), config.observation_keys)
    controller_run = None
    if source_run(config.controller) is not None:
        # The controller acts on the device of the run that uses it, whichever device trained it.
        controller_run = {**resolve_controller_run(registry, store, source_run(config.controller), env_name),
                          "device": device}
    elif config.controller != "none":
        check_controller(config, env_name, manifest)
    reference = None
    if env_name:
        try:
            reference = registry.environments.get(env_name).reference_pair()
        except NotFound:
            reference = None
    # An algorithm that replays the dataset online (DDPG with demonstrations) gets no offline updates:
    # its "offline" result is the untrained policy's evaluation.
    offline_steps = budget.offline_steps if spec.algorithm_class.learns_offline else 0
    sweep_id = uuid.uuid4().hex[:12]
    version = code_version()
    parallel = len(seeds) if executor != "local" and not batch_seeds else 1  # a seed group is one process
    threads = None  # the local executor's one run uses what torch chooses
    if executor == "process":
        threads = default_torch_threads(min(parallel, os.cpu_count() or 1))
    elif executor == "ray":  # a run's CPUs on its node, as many threads
        threads = max(1, int(resources.cpus))
    specs, rows = [], []
    for seed in seeds:
        run_id = uuid.uuid4().hex[:12]
        specs.append(RunSpec(
            run_id=run_id, algorithm=spec.name, config=config_to_json(config), seed=int(seed), dataset_id=info.id,
            storage_path=info.storage_path, manifest_sha256=info.manifest_sha256,
            offline_steps=offline_steps, online_steps=budget.online_steps, eval_every=budget.eval_every,
            eval_episodes=budget.eval_episodes, reference=tuple(reference) if reference else None,
            log_every=budget.log_every, online_evals_at=tuple(sorted(set(budget.online_evals_at))),
            env_overrides=environment_overrides(env, online_env, task, seed, env_options),
            eval_env_overrides=evaluation_overrides(env, env_options, eval_env_options),
            reuse_models=reuse_models, controller_run=controller_run, device=device, precision=precision,
            batched_seeds=len(seeds) if batch_seeds else 0,
            torch_threads=threads))
        rows.append({"id": run_id, "sweep_id": sweep_id, "algorithm": spec.name, "config": config_to_json(config),
                     "config_hash": config_hash(spec.name, config), "seed": int(seed), "dataset_id": info.id,
                     "dataset_content_sha256": info.content_sha256, "env_name": env_name,
                     "plan": {**specs[-1].to_json(), "executor": executor, "domain": domain_of(family),
                              **({"cpus_per_run": resources.cpus, "gpus_per_run": resources.gpus}
                                 if executor == "ray" else {})},
                     "code_version": version})
    store.create(rows)
    return specs


def check_batch_seeds(spec, seeds: list[int]) -> None:
    """``--batch-seeds``: several seeds of a run on states, trained together in one process (this one, a pool
    worker or a Ray task)."""
    if len(seeds) < 2:
        raise InvalidInput("--batch-seeds trains several seeds together: give --seeds 2 or more")
    if len(set(seeds)) != len(seeds):
        raise InvalidInput("--batch-seeds: each seed once")
    if spec.algorithm_class.run_kind != "states" or not (spec.algorithm_class.learns_offline
                                                         or spec.algorithm_class.learns_online):
        raise InvalidInput(f"--batch-seeds: {spec.name} is not a learner on states (only those batch their seeds)")


def check_device(device: str, executor: str) -> str:
    """The device name, refused before any run is recorded when it is malformed, or when it names a GPU this
    machine has not and the runs execute here (Ray workers are other machines: they check their own)."""
    name = check_device_name(device)
    if executor != "ray":
        resolve_device(name)
    return name


# Config fields of every algorithm that only the run on states reads, with their defaults.
STATE_RUN_FIELDS = {field.name: field.default_factory() if field.default is dataclasses.MISSING else field.default
                    for field in dataclasses.fields(AlgorithmConfig)
                    if field.name in ("controller", "observation_keys", "reward_scale")}


def resolve_controller_run(registry: Registry, store: RunStore, run_id: str, env_name: str | None) -> dict[str, Any]:
    """The spec of the run whose policy ``controller=run:ID`` names, checked: finished, on states, on the same
    environment, not goal-conditioned (its policy would need the goals its episodes pursued)."""
    try:
        source = store.get(run_id)
    except NotFound:
        raise InvalidInput(f"controller=run:{run_id}: no such run") from None
    if source.status != RunState.COMPLETED:
        raise InvalidInput(f"controller=run:{run_id}: the run is {source.status}; a controller is a finished run's policy")
    if get_algorithm(source.algorithm).algorithm_class.run_kind != "states":
        raise InvalidInput(f"controller=run:{run_id}: {source.algorithm} does not act on states; only a run on states "
                           f"can be a controller")
    if source.env_name != env_name:
        raise InvalidInput(f"controller=run:{run_id}: the run acted in {source.env_name}, not in {env_name}")
    manifest = registry.manifest(source.dataset_id)
    if ObservationLayout.of(manifest.get("env"), space_from_json(manifest["observation_space"])).goal_conditioned:
        raise InvalidInput(f"controller=run:{run_id}: the run's policy is goal-conditioned, and a controller is "
                           f"given no goal")
    # It acts in the threads of the run that uses it.
    return dataclasses.replace(spec_of(store, run_id), torch_threads=None).to_json()


def check_controller(config, env_name: str | None, manifest: dict[str, Any]) -> None:
    """Refuse, before any run is recorded, a controller the environment has not, or one that cannot be
    combined with the config's goal relabeling."""
    controller_for(config, env_name or "")  # an unknown controller, or one for other environments, fails here
    layout = ObservationLayout.of(manifest.get("env"), space_from_json(manifest["observation_space"]))
    if layout.goal_conditioned and config.relabel_keep < 1.0:
        # The controller acted toward the pursued goal: under a relabeled goal it would have acted otherwise,
        # so the stored residual no longer adds up to the action executed.
        raise InvalidInput("a controller acts toward the episode's goal, so goals cannot be relabeled around it: "
                           "--set relabel_keep=1 relabel_future=0 relabel_final=0 relabel_random=0")


def parse_env_options(pairs: list[str]) -> dict[str, Any]:
    """``--env-set key=value`` pairs -> keyword arguments: numbers, true/false and lists as JSON, else strings."""
    options = {}
    for key, text in parse_overrides(pairs).items():
        try:
            options[key] = json.loads(text)
        except ValueError:
            options[key] = text
    return options


def spec_for_resume(store: RunStore, run_id: str, device: str | None = None, executor: str = "local") -> RunSpec:
    """The spec to continue a run with; ``device`` moves it (a run checkpointed on a GPU resumes on a CPU)."""
    info = store.get(run_id)
    if info.status == RunState.COMPLETED:
        raise InvalidInput(f"run {run_id} is already completed")
    if info.status == RunState.RUNNING:
        raise InvalidInput(f"run {run_id} is running; interrupt it first, or, if its worker died, `bench runs mark-failed {run_id}`")
    spec = spec_of(store, run_id)
    spec.device = check_device(spec.device if device is None else device, executor)
    return spec


def spec_of(store: RunStore, run_id: str) -> RunSpec:
    """The spec a run was planned with, from its recorded plan (whatever its status)."""
    fields = {key: value for key, value in store.get(run_id).plan.items() if key in RunSpec.__dataclass_fields__}
    spec = RunSpec.from_json(fields)
    if spec.reference is not None:
        spec.reference = tuple(spec.reference)
    return spec


# -- executors ---------------------------------------------------------------------------------------
def parse_overrides(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--set expects key=value, got {pair!r}")
        overrides[key.strip()] = value
    return overrides


def parse_steps(text: str | None, option: str) -> tuple[int, ...]:
    """``"3,7,11"`` -> (3, 7, 11); nothing -> ()."""
    if not text:
        return ()
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise InvalidInput(f"{option} expects integers separated by commas, got {text!r}") from None


def seeds_from(count: int | None, explicit: str | None) -> list[int]:
    if explicit:
        return list(parse_steps(explicit, "--seed-list"))
    if count is None or count < 1:
        raise InvalidInput("--seeds must be at least 1")
    return list(range(count))

