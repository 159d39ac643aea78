"""What a run is, as plain data: its spec (everything a worker needs), its outcome, and what a sweep derives for it.

Specs travel to worker processes and Ray tasks, so this module holds no live objects.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import bench

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
    online_evals_at: tuple[int, ...] = ()  # online steps evaluated besides every eval_every
    torch_threads: int | None = None
    # Keyword arguments over the dataset's environment for online practice and evaluation, e.g.
    # a held-out tabletop scene and its task: {"scene_split": "held-out", "scene_seed": 7, "task": ...}.
    env_overrides: dict[str, Any] | None = None
    # Options over env_overrides for evaluation alone (``--eval-env-set``): practise in one setting, be
    # tested in another (ch. 6.6.4 trains with exact goals and tests with perturbed ones).
    eval_env_overrides: dict[str, Any] | None = None
    # Latent-goal runs: load the representation, PixelCNN and offline policy an earlier run of the
    # same data, config and seed stored, and store their own (bench.evaluation.model_cache).
    reuse_models: bool = True
    # ``controller=run:ID``: the spec of the finished run whose policy is pi_H (resolved when planning,
    # so the worker needs no access to the run records).
    controller_run: dict[str, Any] | None = None
    # The torch device, as asked for (auto, cpu, cuda, cuda:N): resolved where the run executes, since a Ray
    # worker may have GPUs the planner has not (bench.algorithms.devices).
    device: str = "auto"
    # fp32, or bf16 autocast for the losses (bench.algorithms.devices.PRECISIONS).
    precision: str = "fp32"
    # How many seeds of its sweep train together with it as one batched model (``--batch-seeds``); 0: alone.
    batched_seeds: int = 0

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


def default_torch_threads(parallel_runs: int) -> int:
    """Threads per run so parallel runs share the cores instead of oversubscribing them."""
    return max(1, (os.cpu_count() or 1) // max(1, parallel_runs))
