"""What every run shares, whatever it learns from: one run = load a dataset, train offline, fine-tune online, evaluate.

    load the dataset version into memory (through the storage URL alone: workers need no database)
    offline: N updates on batches of the replay
    online:  M environment steps, each followed by updates on batches mixing offline and online data
    every K updates / environment steps (and online at extra steps, e.g. dense after the switch):
             E evaluation episodes with the deterministic policy on
             fixed seeds -> return, normalized score, success rate; then a checkpoint
Ctrl-C (KeyboardInterrupt) stops at the current step, writes a checkpoint and marks the run
``interrupted``; ``resume`` continues from that checkpoint (an online episode in progress is
not continued: the environment is reset).

``Run`` is the base; each kind of run (``states.StateRun``, ``pixels.PixelGoalRun``,
``planning.PlanningRun``) builds its buffers and implements evaluation and the online phase.
"""

from __future__ import annotations

import io
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from bench.algorithms.devices import check_precision, resolve_device, rng_state, runtime_of, set_rng_state
from bench.datasets.storage import Storage
from bench.datasets.stored import load_stored_version, open_lazy_version
from bench.evaluation.specs import ProgressCallback, RunOutcome, RunSpec, checkpoint_path
from bench.evaluation.store import Recorder
from bench.platform.db import RunState
from bench.errors import InvalidInput
from bench.platform.settings import Settings


@dataclass
class PhaseResults:
    """One phase's evaluations (offline or online) and their summary: final and best scores."""

    evaluations: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any] | None:
        if not self.evaluations:
            return None
        key = "normalized_score" if self.evaluations[-1].get("normalized_score") is not None else "return"
        best = max(self.evaluations, key=lambda e: e[key])
        return {"final": self.evaluations[-1], "best": best}


class ActionScaler:
    """Environment actions <-> [-1, 1], the range every policy head produces."""

    def __init__(self, space):
        low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
        self.identity = bool(np.allclose(low, -1.0) and np.allclose(high, 1.0))
        self.low, self.high = low, high

    def to_unit(self, action: np.ndarray) -> np.ndarray:
        if self.identity:
            return np.clip(action, -1.0, 1.0)
        return np.clip(2.0 * (action - self.low) / (self.high - self.low) - 1.0, -1.0, 1.0)

    def to_env(self, unit: np.ndarray) -> np.ndarray:
        if self.identity:
            return unit
        return self.low + (unit + 1.0) * 0.5 * (self.high - self.low)


class FixedGoal:
    """The goal of an episode, unchanged by what happens in it (``episode_goals``' default)."""

    def __init__(self, goal: np.ndarray | None):
        self.current = goal

    def observe(self, observation: Any) -> None:
        pass


STEP_ARRAYS = {"actions", "rewards", "terminations", "truncations"}


class Run:
    """What every kind of run shares: records, phases bookkeeping, evaluation points, checkpoints, ``execute``."""

    def __init__(self, spec: RunSpec, settings: Settings, recorder: Recorder,
                 progress: ProgressCallback | None = None, dataset=None):
        """What every kind of run starts with: records, storage, threads, seeds, the dataset in memory
        (``dataset``: one already loaded, which runs of one seed group share; they only read it).

        A kind of run then builds ``env``, ``eval_env``, ``config``, ``algorithm``, ``online``, ``replay``,
        ``results``, ``timings`` and ``learns_online``, and implements the three methods below."""
        self.spec = spec
        self.recorder = recorder
        self.report_progress = progress or (lambda *args: None)
        self.storage = Storage(settings.storage_url, settings.storage_options)
        if spec.torch_threads:
            torch.set_num_threads(spec.torch_threads)
        # Models and buffers live here; environments stay on the CPU (bench.algorithms.devices).
        self.device = resolve_device(spec.device)
        check_precision(spec.precision, self.device)
        # One entry per stretch of the run (its start, then each resume): which device and versions produced it.
        self.runtimes: list[dict[str, Any]] = []
        torch.manual_seed(spec.seed)
        self.rng = np.random.default_rng(spec.seed)
        self._clock = time.perf_counter()  # the start of the time being charged to the current phase
        self.load_max_bytes = settings.load_max_bytes  # what of a version may be held in memory
        self.dataset = dataset if dataset is not None else self.open_dataset(settings)

    # Whether this kind of run can train from the arrays it reads of a version too large to load whole
    # (``narrow_dataset``); a kind that cannot loads the version whole.
    reads_part_of_a_version: bool = False

    def open_dataset(self, settings: Settings):
        """The run's dataset in memory; a version larger than BENCH_LOAD_MAX_BYTES stays on demand (a LazyDataset)
        for a kind of run that then loads only the arrays it reads (``narrow_dataset``)."""
        spec = self.spec
        lazy = (open_lazy_version(self.storage, settings.cache_dir, spec.dataset_id, spec.storage_path,
                                  spec.manifest_sha256) if self.reads_part_of_a_version else None)
        if lazy is None or lazy.decoded_bytes <= settings.load_max_bytes:
            return load_stored_version(self.storage, settings.cache_dir, spec.dataset_id, spec.storage_path,
                                       spec.manifest_sha256)
        return lazy

    def arrays_fit(self, paths: list[str]) -> bool:
        """Whether the arrays in ``paths`` (and the steps') of a version opened on demand fit BENCH_LOAD_MAX_BYTES."""
        return self.dataset.array_bytes(sorted(set(paths) | STEP_ARRAYS)) <= self.load_max_bytes

    def narrow_dataset(self, paths: list[str]) -> None:
        """A version opened on demand becomes the in-memory Dataset of the arrays in ``paths`` (and the steps'
        actions, rewards and ends): the same rows, so the run is the one it would be on the whole version."""
        if not self.dataset.lazy:
            return
        if not self.arrays_fit(paths):
            needed = self.dataset.array_bytes(sorted(set(paths) | STEP_ARRAYS))
            raise InvalidInput(
                f"{self.dataset.id}: the arrays this run reads decode to {needed / 2**30:.1f} GiB, more than "
                f"BENCH_LOAD_MAX_BYTES ({self.load_max_bytes / 2**30:.1f} GiB); raise it if the machine has the memory")
        self.dataset = self.dataset.load(paths)

    def place(self, algorithm):
        """The algorithm on the run's device, computing its losses in the run's precision."""
        algorithm = algorithm.to(self.device)
        algorithm.set_precision(self.spec.precision)
        return algorithm

    # -- what a kind of run implements -----------------------------------------------------------------
    def evaluate(self) -> dict[str, Any]:
        """E episodes with the deterministic policy on fixed seeds -> return, success rate, normalized score."""
        raise NotImplementedError

    def run_offline(self, start: int) -> None:
        """Offline updates from step ``start`` on batches of the replay (which holds the dataset's transitions)."""
        total, losses = self.spec.offline_steps, LossAverager()
        self.start_phase("offline", start)
        for step in range(start, total):
            losses.add(self.algorithm.update(self.replay.sample(self.config.replay_batch()[0])))
            self.step_done("offline", step + 1, total, losses)
        self.charge_time("offline")
        if total == 0 and not self.results["offline"].evaluations:
            self._evaluate_and_checkpoint("offline", 0)  # the untrained policy, so "offline" has a value

    def run_online(self, start: int) -> None:
        """Environment steps (and their updates) from step ``start``, calling ``step_done`` after each."""
        raise NotImplementedError

    # -- evaluation ----------------------------------------------------------------------------------
    def _evaluate_and_checkpoint(self, phase: str, step: int) -> None:
        values = self.evaluate()
        self.results[phase].evaluations.append({"step": step, **values})
        self.recorder.metrics(self.spec.run_id, "eval", phase, step, values)
        self.phase, self.step = phase, step
        self.save_checkpoint()

    # -- phases ------------------------------------------------------------------------------------------
    def step_done(self, phase: str, done: int, total: int, losses: "LossAverager") -> None:
        """Bookkeeping after ``done`` steps of a phase: losses, evaluation + checkpoint, progress."""
        spec = self.spec
        self.step = done  # completed steps: what a checkpoint resumes from
        if done % spec.log_every == 0 or done == total:
            self.recorder.metrics(spec.run_id, "train", phase, done, losses.pop())
            self.recorder.progress(spec.run_id, phase, done, total)
        if self._evaluation_due(phase, done, total):
            self.charge_time(phase)  # training time excludes evaluation
            self._evaluate_and_checkpoint(phase, done)
            self._clock = time.perf_counter()
        # Reported last, so an interrupt raised from the callback finds this step fully recorded.
        if done % 50 == 0 or done == total:
            self.report_progress(spec.run_id, phase, done, total)

    def charge_time(self, phase: str) -> None:
        now = time.perf_counter()
        self.timings[f"{phase}_seconds"] += now - self._clock
        self._clock = now

    # -- checkpoints ------------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        state = {
            "phase": self.phase, "step": self.step,
            "algorithm": self.algorithm.checkpoint_state(),
            "online_buffer": self.online.state_dict() if self.online is not None else None,
            "replay_generator": self.replay.generator.get_state(),
            "torch_rng": rng_state(self.device),
            "runtimes": self.runtimes,
            "numpy_rng": self.rng.bit_generator.state,
            "evaluations": {phase: r.evaluations for phase, r in self.results.items()},
            "timings": dict(self.timings),
            "state_normalization": (self.state_mean, self.state_std),
            **self.checkpoint_extras(),
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        path = checkpoint_path(self.spec.run_id)
        self.storage.write_bytes(path, buffer.getvalue())
        self.recorder.checkpoint(self.spec.run_id, path)

    def load_checkpoint(self) -> bool:
        path = checkpoint_path(self.spec.run_id)
        if not self.storage.exists(path):
            return False
        # Read as CPU tensors, whatever device wrote them; loading copies each onto this run's device.
        state = torch.load(io.BytesIO(self.storage.read_bytes(path)), map_location="cpu", weights_only=False)
        self.algorithm.load_checkpoint_state(state["algorithm"])
        self.models_restored()
        if self.online is not None and state["online_buffer"] is not None:
            self.online.load_state_dict(state["online_buffer"])
            if state["phase"] == "online" and self.online.size > state["step"]:
                # Ctrl-C came after a step's transition was stored and before the step was counted:
                # the buffer keeps one row per completed step, and the step is taken again.
                self.online.truncate(state["step"])
        self.replay.generator.set_state(state["replay_generator"])
        set_rng_state(state["torch_rng"], self.device)
        self.runtimes = list(state.get("runtimes", []))
        self.rng.bit_generator.state = state["numpy_rng"]
        for phase, evaluations in state["evaluations"].items():
            self.results[phase].evaluations = evaluations
        self.timings.update(state["timings"])
        self.phase, self.step = state["phase"], state["step"]
        self.restore_extras(state)
        return True

    def models_restored(self) -> None:
        """After a checkpoint's models are loaded, before its buffers (the pixel harness re-encodes D here)."""

    def checkpoint_extras(self) -> dict[str, Any]:
        """What a kind of run adds to its checkpoints (the pixel harness: online episodes' latents)."""
        return {}

    def restore_extras(self, state: dict[str, Any]) -> None:
        """Restore what ``checkpoint_extras`` saved, after everything else."""

    def extra_results(self) -> dict[str, Any]:
        """What a kind of run adds to its results (the pixel harness: its artifacts)."""
        return {}

    def _evaluation_due(self, phase: str, done: int, total: int) -> bool:
        """Every ``eval_every`` steps, at the phase's end, and online at the extra steps the run asks for."""
        return (done % self.spec.eval_every == 0 or done == total
                or (phase == "online" and done in self.spec.online_evals_at))

    def _evaluation_owed(self) -> bool:
        total = self.spec.offline_steps if self.phase == "offline" else self.spec.online_steps
        due = self.step > 0 and self._evaluation_due(self.phase, self.step, total)
        evaluations = self.results[self.phase].evaluations
        return due and (not evaluations or evaluations[-1]["step"] != self.step)

    # -- the whole run ----------------------------------------------------------------------------------
    def begin(self, resume: bool = False, **runtime: Any) -> bool:
        """Record the start (and, with ``resume``, continue from the last checkpoint): whether one was loaded.
        ``runtime`` adds to what this stretch of the run records about how it ran."""
        self.recorder.started(self.spec.run_id, socket.gethostname())
        resumed = resume and self.load_checkpoint()
        self.runtimes.append({"phase": self.phase, "step": self.step if resumed else 0,
                              **runtime_of(self.device, self.spec.precision), **runtime})
        if resumed:
            self.recorder.resumed(self.spec.run_id, self.phase, self.step)
        return resumed

    def start_phase(self, phase: str, step: int) -> None:
        """The phase's clock starts at ``step``."""
        self.phase, self.step, self._clock = phase, step, time.perf_counter()

    def execute(self, resume: bool = False) -> RunOutcome:
        spec = self.spec
        offline_start, online_start = 0, 0
        if self.begin(resume):
            if self.phase == "offline":
                offline_start = self.step
            else:
                offline_start, online_start = spec.offline_steps, self.step
        try:
            if resume and self._evaluation_owed():
                # Ctrl-C arrived during the evaluation at this step: its checkpoint has the step's
                # update, not its evaluation; evaluate before going on, so no point of the curve is lost.
                self._evaluate_and_checkpoint(self.phase, self.step)
            if offline_start < spec.offline_steps or not self.results["offline"].evaluations:
                self.run_offline(offline_start)
            if self.learns_online:
                if online_start == 0:
                    self.algorithm.begin_online()
                self.run_online(online_start)
        except KeyboardInterrupt:
            return self.interrupted()
        except Exception as exc:  # a failed run is recorded, and the sweep goes on
            return self.finish(RunState.FAILED, f"{type(exc).__name__}: {exc}")
        finally:
            self.close()
        return self.finish(RunState.COMPLETED, None)

    def interrupted(self) -> RunOutcome:
        """After Ctrl-C: a checkpoint where the run stands, and the run recorded as interrupted."""
        self.save_checkpoint()
        return self.finish(RunState.INTERRUPTED, f"interrupted; continue with `bench runs resume {self.spec.run_id}`")

    def close(self) -> None:
        self.env.close()
        self.eval_env.close()

    def finish(self, status: str, error: str | None) -> RunOutcome:
        results = {**{phase: r.summary() for phase, r in self.results.items()}, **self.extra_results(),
                   "runtime": self.runtimes}
        if not self.algorithm.learns_online:
            results["online"] = None
            results["note"] = f"{self.spec.algorithm} does not learn online; its online phase is skipped"
        timings = dict(self.timings)
        if status == RunState.COMPLETED and timings["offline_seconds"] > 0 and self.spec.offline_steps > 0:
            timings["offline_updates_per_second"] = self.spec.offline_steps / timings["offline_seconds"]
        if status == RunState.COMPLETED and timings["online_seconds"] > 0 and self.learns_online:
            timings["online_env_steps_per_second"] = self.spec.online_steps / timings["online_seconds"]
        self.recorder.finished(self.spec.run_id, status, results, timings, error=error)
        return RunOutcome(self.spec.run_id, status, results, timings, error)


def median_distance_apart(states: torch.Tensor, episode_end: torch.Tensor, offset: int) -> float:
    """The median distance between each row of ``states`` and the row ``offset`` later in its episode
    (fewer near the episode's end; ``episode_end[i]`` is the last row of row i's episode). An
    episode's last row has nothing after it and is left out."""
    rows = torch.arange(len(states), device=states.device)
    later = torch.minimum(rows + offset, episode_end)
    moved = later > rows
    return float((states[later[moved]] - states[rows[moved]]).norm(dim=1).median())


class LossAverager:
    """Sums loss tensors between log points; converts to floats only when logged (no sync per step)."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, metrics: dict[str, torch.Tensor]) -> None:
        for key, value in metrics.items():
            self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()
        self.count += 1

    def pop(self) -> dict[str, float]:
        out = {key: float(value) / max(1, self.count) for key, value in self.sums.items()}
        self.sums, self.count = {}, 0
        return out


