"""The evaluation harness: one run = load a dataset, train offline, fine-tune online, evaluate on fixed episodes.

    load the dataset version into memory (through the storage URL alone: workers need no database)
    build the evaluation environment from the dataset's environment reference
    offline: N updates on the dataset (replay = offline buffer)
    online:  M environment steps with the stochastic policy; each step is appended to the online
             buffer and followed by updates on batches mixing offline and online data
    every K updates / environment steps: E evaluation episodes with the deterministic policy on
             fixed seeds -> return, normalized score, success rate; then a checkpoint
Ctrl-C (KeyboardInterrupt) stops at the current step, writes a checkpoint and marks the run
``interrupted``; ``resume`` continues from that checkpoint (an online episode in progress is
not continued: the environment is reset).
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

import bench
from bench.algorithms import build_algorithm, get_algorithm
from bench.algorithms.config import COMPILE_AUTO_UPDATES, config_from_json
from bench.algorithms.replay import GoalNormalizer, RelabelShares, Replay, TransitionBuffer
from bench.datasets.storage import Storage
from bench.datasets.stored import load_stored_version
from bench.evaluation.layouts import ObservationLayout, evaluation_seed, success_of
from bench.evaluation.store import Recorder
from bench.platform.db import RunState
from bench.platform.settings import Settings

ProgressCallback = Callable[[str, str, int, int], None]  # (run_id, phase, step, total)


@dataclass
class RunSpec:
    """Everything a worker needs to execute one run; plain data, so it travels to processes and Ray."""

    run_id: str
    algorithm: str
    config: dict[str, Any]
    seed: int
    dataset_id: str
    storage_path: str
    manifest_sha256: str
    offline_steps: int
    online_steps: int
    eval_every: int
    eval_episodes: int
    # (random, expert, source) of the environment, for normalized scores; None if it has none.
    reference: tuple[float, float, str] | None = None
    log_every: int = 1000
    torch_threads: int | None = None
    # Keyword arguments over the dataset's environment for online practice and evaluation, e.g.
    # a held-out tabletop scene and its task: {"scene_split": "held-out", "scene_seed": 7, "task": ...}.
    env_overrides: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunSpec":
        return cls(**data)


@dataclass
class RunOutcome:
    run_id: str
    status: str
    results: dict[str, Any]
    timings: dict[str, Any]
    error: str | None = None


def checkpoint_path(run_id: str) -> str:
    return f"_runs/{run_id}/checkpoint.pt"


def code_version() -> str:
    """bench's version, plus the git commit (and '-dirty') when running from a source checkout."""
    version = getattr(bench, "__version__", "0")
    root = Path(bench.__file__).resolve().parents[1]
    if (root / ".git").exists():
        try:
            commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                    text=True, timeout=5).stdout.strip()
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            if commit:
                return f"{version}+{commit}{'-dirty' if dirty else ''}"
        except (OSError, subprocess.SubprocessError):
            pass
    return version


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


class Run:
    """One run's state: dataset, environment, algorithm, replay; ``execute`` drives the phases."""

    def __init__(self, spec: RunSpec, settings: Settings, recorder: Recorder,
                 progress: ProgressCallback | None = None):
        self._begin(spec, settings, recorder, progress)
        # Evaluation gets its own environment, so it never disturbs an online episode in progress.
        self.env = self.dataset.make_env()
        self.eval_env = self.dataset.make_env()
        self.layout = ObservationLayout.of(self.dataset.manifest.get("env"), self.dataset.observation_space)
        self.actions = ActionScaler(self.env.action_space)
        algorithm_spec = get_algorithm(spec.algorithm)
        self.config = config_from_json(algorithm_spec.config_class, spec.config)
        self._build_offline_buffer(algorithm_spec)
        goal_dim = 0 if self.offline.goal is None else self.offline.goal.shape[1]
        self.algorithm = build_algorithm(spec.algorithm, self.config, self.state_mean.shape[0] + goal_dim,
                                         self.offline.action.shape[1])
        self.learns_online = self.algorithm.learns_online and spec.online_steps > 0
        total_updates = spec.offline_steps + (spec.online_steps * self.config.updates_per_env_step
                                              if self.learns_online else 0)
        if self.config.compile == "on" or (self.config.compile == "auto" and total_updates >= COMPILE_AUTO_UPDATES):
            self.algorithm.compile_losses()
        self.online = (TransitionBuffer(spec.online_steps, self.state_mean.shape[0], self.offline.action.shape[1],
                                        goal_dim) if self.learns_online else None)
        self.replay = Replay(self.offline, self.online, self.config.online_fraction, self.relabel,
                             self.layout.goal_reward(self.env), self.goal_normalizer, self.reward_scale,
                             self.reward_shift, seed=spec.seed)
        self.results = {"offline": PhaseResults(), "online": PhaseResults()}
        self.timings: dict[str, float] = {"offline_seconds": 0.0, "online_seconds": 0.0, "eval_seconds": 0.0}
        self.phase, self.step = "offline", 0

    def _begin(self, spec: RunSpec, settings: Settings, recorder: Recorder,
               progress: ProgressCallback | None) -> None:
        """What every kind of run starts with: records, storage, threads, seeds, the dataset in memory."""
        self.spec = spec
        self.recorder = recorder
        self.report_progress = progress or (lambda *args: None)
        self.storage = Storage(settings.storage_url, settings.storage_options)
        if spec.torch_threads:
            torch.set_num_threads(spec.torch_threads)
        torch.manual_seed(spec.seed)
        self.rng = np.random.default_rng(spec.seed)
        self._clock = time.perf_counter()  # the start of the time being charged to the current phase
        self.dataset = load_stored_version(self.storage, settings.cache_dir, spec.dataset_id, spec.storage_path,
                                           spec.manifest_sha256)

    # -- data ------------------------------------------------------------------------------------
    def _build_offline_buffer(self, algorithm_spec) -> None:
        data, layout = self.dataset.data, self.layout
        obs_rows = self.dataset.obs_row_of_step
        lengths = np.asarray(data.lengths)
        returns = np.add.reduceat(data.rewards.astype(np.float64), data.step_starts) if len(lengths) else np.zeros(0)
        # Algorithms may train on a subset of episodes (BC-x%); ask before building anything.
        selector = algorithm_spec.algorithm_class.select_episodes(self.config, returns)
        steps = np.ones(data.num_steps, dtype=bool) if selector is None else np.repeat(selector, lengths)
        kept_lengths = lengths if selector is None else lengths[selector]
        kept_returns = returns if selector is None else returns[selector]

        states = layout.state(data.observations, batched=True)
        state, next_state = states[obs_rows[steps]], states[obs_rows[steps] + 1]
        if self.config.normalize_observations:
            self.state_mean = state.mean(0).astype(np.float32)
            self.state_std = (state.std(0) + 1e-3).astype(np.float32)
        else:
            self.state_mean = np.zeros(state.shape[1], np.float32)
            self.state_std = np.ones(state.shape[1], np.float32)
        achieved = layout.achieved(data.observations)
        goals = layout.dataset_goal(data.observations)
        next_achieved = None if achieved is None else achieved.reshape(len(achieved), -1)[obs_rows[steps] + 1]
        goal = None if goals is None else goals.reshape(len(goals), -1)[obs_rows[steps]]
        self.offline = TransitionBuffer.from_arrays(
            self._normalize(state), self._normalize(next_state), self.actions.to_unit(data.actions[steps]),
            data.rewards[steps], data.terminations[steps], kept_lengths, goal, next_achieved)

        c = self.config
        self.relabel = RelabelShares(c.relabel_keep, c.relabel_future, c.relabel_final, c.relabel_random)
        if layout.goal_conditioned and goals is None:
            # No goals in the data (OGBench): every goal comes from relabeling; "keep" becomes "future".
            self.relabel = RelabelShares(0.0, c.relabel_keep + c.relabel_future, c.relabel_final, c.relabel_random)
        self.goal_normalizer = None
        if layout.goal_mode == "dict" and c.normalize_observations:
            self.goal_normalizer = GoalNormalizer(torch.as_tensor(next_achieved.mean(0)),
                                                  torch.as_tensor(next_achieved.std(0) + 1e-3))
        elif layout.goal_mode == "observation":
            self.goal_normalizer = GoalNormalizer(torch.as_tensor(self.state_mean), torch.as_tensor(self.state_std))
        self.reward_scale, self.reward_shift = 1.0, 0.0
        if c.reward_transform == "returns" and len(kept_returns) > 1 and np.ptp(kept_returns) > 0:
            self.reward_scale = float(1000.0 / np.ptp(kept_returns))
        elif c.reward_transform == "minus_one":
            self.reward_shift = -1.0

    def _normalize(self, state: np.ndarray) -> np.ndarray:
        return ((state - self.state_mean) / self.state_std).astype(np.float32)

    def _policy_input(self, observation: Any, goal: np.ndarray | None) -> torch.Tensor:
        state = torch.from_numpy(self._normalize(self.layout.state(observation)))
        if goal is not None:
            g = torch.from_numpy(np.asarray(goal, np.float32).reshape(-1))
            state = torch.cat([state, self.goal_normalizer(g) if self.goal_normalizer is not None else g])
        return state.unsqueeze(0)

    def act(self, observation: Any, goal: np.ndarray | None, deterministic: bool) -> tuple[np.ndarray, np.ndarray]:
        """(action for the environment, the same action in [-1, 1])."""
        unit = self.algorithm.act(self._policy_input(observation, goal), deterministic)[0].numpy().astype(np.float64)
        return self.actions.to_env(unit).astype(self.env.action_space.dtype), unit

    # -- evaluation ----------------------------------------------------------------------------------
    def evaluate(self) -> dict[str, Any]:
        started = time.perf_counter()
        returns, successes, lengths = [], [], []
        for episode in range(self.spec.eval_episodes):
            observation, info = self.eval_env.reset(seed=evaluation_seed(episode),
                                                    options=self.layout.reset_options(episode))
            goals = self.episode_goals(observation, self.layout.goal_after_reset(observation, info), practice=False)
            total, success, length = 0.0, False, 0
            while True:
                action, _ = self.act(observation, goals.current, deterministic=True)
                observation, reward, terminated, truncated, info = self.eval_env.step(action)
                goals.observe(observation)
                total += float(reward)
                length += 1
                step_success = success_of(info)
                success = step_success if self.layout.success_rule == "final" else (success or step_success)
                if terminated or truncated:
                    break
            returns.append(total)
            successes.append(success)
            lengths.append(length)
        self.timings["eval_seconds"] += time.perf_counter() - started
        mean_return = float(np.mean(returns))
        score = None
        if self.spec.reference is not None:
            random, expert, _ = self.spec.reference
            score = 100.0 * (mean_return - random) / (expert - random)
        return {"return": mean_return, "return_std": float(np.std(returns)), "normalized_score": score,
                "success_rate": float(np.mean(successes)), "episodes": len(returns),
                "episode_length": float(np.mean(lengths))}

    def _evaluate_and_checkpoint(self, phase: str, step: int) -> None:
        values = self.evaluate()
        self.results[phase].evaluations.append({"step": step, **values})
        self.recorder.metrics(self.spec.run_id, "eval", phase, step, values)
        self.phase, self.step = phase, step
        self.save_checkpoint()

    # -- phases ------------------------------------------------------------------------------------------
    def run_offline(self, start: int) -> None:
        total, losses = self.spec.offline_steps, LossAverager()
        self.phase, self.step, self._clock = "offline", start, time.perf_counter()
        for step in range(start, total):
            losses.add(self.algorithm.update(self.replay.sample(self.config.batch_size)))
            self._after_step("offline", step + 1, total, losses)
        self._charge_time("offline")
        if total == 0 and not self.results["offline"].evaluations:
            self._evaluate_and_checkpoint("offline", 0)  # the untrained policy, so "offline" has a value

    def run_online(self, start: int) -> None:
        total, losses = self.spec.online_steps, LossAverager()
        observation, goals = self._reset_online()
        self.phase, self.step, self._clock = "online", start, time.perf_counter()
        for step in range(start, total):
            goal = goals.current
            action, unit = self.act(observation, goal, deterministic=False)
            next_observation, reward, terminated, truncated, info = self.env.step(action)
            achieved = self.layout.achieved(next_observation)
            self.online.add(self._normalize(self.layout.state(observation)), unit, float(reward),
                            self._normalize(self.layout.state(next_observation)), bool(terminated), goal,
                            None if achieved is None else achieved.reshape(-1))
            observation = next_observation
            goals.observe(observation)
            if terminated or truncated:
                self.online.end_episode()
                observation, goals = self._reset_online()
            for _ in range(self.config.updates_per_env_step):
                losses.add(self.algorithm.update(self.replay.sample(self.config.batch_size)))
            self._after_step("online", step + 1, total, losses)
        self._charge_time("online")

    def _after_step(self, phase: str, done: int, total: int, losses: "LossAverager") -> None:
        """Bookkeeping after ``done`` steps of a phase: losses, evaluation + checkpoint, progress."""
        spec = self.spec
        self.step = done  # completed steps: what a checkpoint resumes from
        if done % spec.log_every == 0 or done == total:
            self.recorder.metrics(spec.run_id, "train", phase, done, losses.pop())
            self.recorder.progress(spec.run_id, phase, done, total)
        if done % spec.eval_every == 0 or done == total:
            self._charge_time(phase)  # training time excludes evaluation
            self._evaluate_and_checkpoint(phase, done)
            self._clock = time.perf_counter()
        # Reported last, so an interrupt raised from the callback finds this step fully recorded.
        if done % 50 == 0 or done == total:
            self.report_progress(spec.run_id, phase, done, total)

    def _charge_time(self, phase: str) -> None:
        now = time.perf_counter()
        self.timings[f"{phase}_seconds"] += now - self._clock
        self._clock = now

    def _reset_online(self) -> tuple[Any, "FixedGoal"]:
        episode = int(self.rng.integers(2**31))
        observation, info = self.env.reset(seed=int(self.rng.integers(2**31)),
                                           options=self.layout.reset_options(episode))
        return observation, self.episode_goals(observation, self.layout.goal_after_reset(observation, info),
                                               practice=True)

    def episode_goals(self, observation: Any, goal: np.ndarray | None, practice: bool) -> "FixedGoal":
        """What the policy is conditioned on during an episode: the task's goal throughout.

        A planner overrides it to hand out subgoals (PTP on states, bench.evaluation.planning);
        ``practice`` tells an online episode from an evaluation one."""
        return FixedGoal(goal)

    # -- checkpoints ------------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        state = {
            "phase": self.phase, "step": self.step,
            "algorithm": self.algorithm.checkpoint_state(),
            "online_buffer": self.online.state_dict() if self.online is not None else None,
            "replay_generator": self.replay.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
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
        state = torch.load(io.BytesIO(self.storage.read_bytes(path)), weights_only=False)
        self.algorithm.load_checkpoint_state(state["algorithm"])
        self.models_restored()
        if self.online is not None and state["online_buffer"] is not None:
            self.online.load_state_dict(state["online_buffer"])
        self.replay.generator.set_state(state["replay_generator"])
        torch.set_rng_state(state["torch_rng"])
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

    def _evaluation_owed(self) -> bool:
        total = self.spec.offline_steps if self.phase == "offline" else self.spec.online_steps
        due = self.step > 0 and (self.step % self.spec.eval_every == 0 or self.step == total)
        evaluations = self.results[self.phase].evaluations
        return due and (not evaluations or evaluations[-1]["step"] != self.step)

    # -- the whole run ----------------------------------------------------------------------------------
    def execute(self, resume: bool = False) -> RunOutcome:
        spec = self.spec
        self.recorder.started(spec.run_id, socket.gethostname())
        offline_start, online_start = 0, 0
        if resume and self.load_checkpoint():
            self.recorder.resumed(spec.run_id, self.phase, self.step)
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
            self.save_checkpoint()
            return self._finish(RunState.INTERRUPTED, "interrupted; continue with `bench runs resume "
                                                      f"{spec.run_id}`")
        except Exception as exc:  # a failed run is recorded, and the sweep goes on
            return self._finish(RunState.FAILED, f"{type(exc).__name__}: {exc}")
        finally:
            self.env.close()
            self.eval_env.close()
        return self._finish(RunState.COMPLETED, None)

    def _finish(self, status: str, error: str | None) -> RunOutcome:
        results = {**{phase: r.summary() for phase, r in self.results.items()}, **self.extra_results()}
        if not self.algorithm.learns_online:
            results["online"] = None
            results["note"] = f"{self.spec.algorithm} does not learn online; its online phase is skipped"
        timings = dict(self.timings)
        if status == RunState.COMPLETED and timings["offline_seconds"] > 0:
            timings["offline_updates_per_second"] = self.spec.offline_steps / timings["offline_seconds"]
        if status == RunState.COMPLETED and timings["online_seconds"] > 0 and self.learns_online:
            timings["online_env_steps_per_second"] = self.spec.online_steps / timings["online_seconds"]
        self.recorder.finished(self.spec.run_id, status, results, timings, error=error)
        return RunOutcome(self.spec.run_id, status, results, timings, error)


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


def default_torch_threads(parallel_runs: int) -> int:
    """Threads per run so parallel runs share the cores instead of oversubscribing them."""
    return max(1, (os.cpu_count() or 1) // max(1, parallel_runs))
