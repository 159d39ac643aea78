"""Shared by the probes that inspect a finished run (goal_reaching, plan_probe, nearby_goals): the run, loaded as a resume would."""

from __future__ import annotations

from typing import Any

from bench.datasets import Registry
from bench.evaluation.kinds import build_run
from bench.evaluation.specs import RunSpec
from bench.evaluation.store import RunStore
from bench.evaluation.sweeps import spec_of
from bench.platform.settings import Settings


def load_finished_run(home: str, run_id: str) -> tuple[Any, RunSpec]:
    """The run ``run_id`` of the registry at ``home``, with its last checkpoint loaded, and its spec."""
    settings = Settings.load(home=home)
    store = RunStore(Registry.open(settings).engine)
    spec = spec_of(store, run_id)
    run = build_run(spec, settings, store)
    if not run.load_checkpoint():
        raise SystemExit(f"run {run_id} has no checkpoint")
    return run, spec
