"""Which run drives which algorithm: one visible table keyed by the algorithm's ``run_kind``, and one entry point.

A new kind of run is a subclass of ``harness.Run`` in a module of its own, named here.
"""

from __future__ import annotations

import socket

from bench.algorithms import get_algorithm
from bench.errors import InvalidInput
from bench.evaluation.harness import Run
from bench.evaluation.pixels import PixelGoalRun
from bench.evaluation.planning import PlanningRun, StatePlanningRun
from bench.evaluation.seed_groups import SeedGroup
from bench.evaluation.specs import ProgressCallback, RunOutcome, RunSpec
from bench.evaluation.states import StateRun
from bench.evaluation.store import Recorder
from bench.platform.db import RunState
from bench.platform.settings import Settings

RUN_KINDS: dict[str, type[Run]] = {
    "states": StateRun,  # observations as they are: BC, AWAC, IQL, CQL
    "pixels": PixelGoalRun,  # images, a learned representation, imagined goals: RIG, CC-RIG, VAL
    "planning": PlanningRun,  # VAL's pixel run with subgoal plans: PTP and its ablations
    "state-planning": StatePlanningRun,  # subgoal plans between OGBench observations: ptp-state
}


def build_run(spec: RunSpec, settings: Settings, recorder: Recorder, progress: ProgressCallback | None = None) -> Run:
    """The kind of run the algorithm needs, by its ``run_kind``: on states, with pixel goals, or with subgoal plans."""
    kind = get_algorithm(spec.algorithm).algorithm_class.run_kind
    if kind not in RUN_KINDS:
        raise InvalidInput(f"algorithm {spec.algorithm} asks for run kind {kind!r}; known: {', '.join(RUN_KINDS)}")
    return RUN_KINDS[kind](spec, settings, recorder, progress)


def execute_run(spec: RunSpec, settings: Settings, recorder: Recorder, progress: ProgressCallback | None = None,
                resume: bool = False) -> RunOutcome:
    """Build and execute one run; setup errors (a missing dataset file, say) are recorded as failures."""
    try:
        run = build_run(spec, settings, recorder, progress)
    except KeyboardInterrupt:
        recorder.finished(spec.run_id, RunState.INTERRUPTED, {}, {}, error="interrupted before it started")
        return RunOutcome(spec.run_id, RunState.INTERRUPTED, {}, {}, "interrupted before it started")
    except Exception as exc:
        return _failed_to_start([spec], recorder, exc)[0]
    return run.execute(resume=resume)


def execute_group(specs: list[RunSpec], settings: Settings, recorder: Recorder,
                  progress: ProgressCallback | None = None) -> list[RunOutcome]:
    """Seeds trained together as one batched model (``--batch-seeds``; bench.evaluation.seed_groups): each spec
    is still its own run, recorded as such. A member that cannot be built fails the whole group."""
    runs: list = []
    try:
        for spec in specs:  # one dataset in memory for all of them
            if runs:
                runs.append(type(runs[0])(spec, settings, recorder, progress, dataset=runs[0].dataset))
            else:
                runs.append(build_run(spec, settings, recorder, progress))
    except Exception as exc:
        return _failed_to_start(specs, recorder, exc)
    return SeedGroup(runs).execute()


def _failed_to_start(specs: list[RunSpec], recorder: Recorder, exc: Exception) -> list[RunOutcome]:
    """Runs that could not be built (a missing dataset file, say), recorded as failed."""
    error = f"{type(exc).__name__}: {exc}"
    for spec in specs:
        recorder.started(spec.run_id, socket.gethostname())
        recorder.finished(spec.run_id, RunState.FAILED, {}, {}, error=error)
    return [RunOutcome(spec.run_id, RunState.FAILED, {}, {}, error) for spec in specs]
