"""Seeds trained together (``bench evaluate --batch-seeds``): S runs on states stepping in lockstep around one model.

Each member is a ``StateRun`` of its own: its seed, its replay and data sampling, its environments,
evaluations, checkpoints and recorded run. The group replaces the members' S updates per step with
one ``SeedStack`` update (bench.algorithms.seeds) and their S policy passes per environment step with
one; evaluation stays per member (deterministic, so a member is evaluated as its run alone would be).

    offline  for each step: each member samples its batch; one stacked update; each member records
             its losses, evaluates and checkpoints at its points
    online   for each step: one batched policy pass on the members' observations; each member steps
             its own environment and stores its transition; then the stacked updates

A member's checkpoint is an ordinary run's: `bench runs resume RUN_ID` continues it alone. Its
timings are the group's wall-clock (every member waited for all S), and its results record the
group size (``runtime[*].batched_seeds``).
"""

from __future__ import annotations

from typing import Any

import torch

from bench.algorithms.seeds import SeedStack
from bench.evaluation.harness import LossAverager
from bench.evaluation.specs import RunOutcome
from bench.evaluation.states import StateRun
from bench.platform.db import RunState


class SeedMember:
    """What a member run sees as its algorithm: its seed's slice of the stack (acting, checkpoints); anything
    else is its own algorithm's (config, class attributes)."""

    def __init__(self, stack: SeedStack, index: int, own):
        self.stack, self.index, self.own = stack, index, own

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        return self.stack.act_member(self.index, obs, deterministic)

    def checkpoint_state(self) -> dict[str, Any]:
        return self.stack.member_state(self.index)

    def update(self, batch) -> dict[str, torch.Tensor]:
        raise RuntimeError("a member of a seed group is updated by its group")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.own, name)


class SeedGroup:
    """Runs on states of one algorithm, dataset and config that differ only in their seed; see the module docstring."""

    def __init__(self, runs: list[StateRun]):
        self.runs = runs
        self.stack = SeedStack([run.algorithm for run in runs])
        for i, run in enumerate(runs):
            run.algorithm = SeedMember(self.stack, i, run.algorithm)

    def _steps_done(self, phase: str, done: int, total: int, losses: list[LossAverager]) -> None:
        # Every member counts the step before any records it: a Ctrl-C raised while one member records its
        # step leaves each member's checkpoint at the step its weights and transitions are at.
        for run in self.runs:
            run.step = done
        for run, averager in zip(self.runs, losses):
            run.step_done(phase, done, total, averager)

    def _update(self, losses: list[LossAverager]) -> None:
        batches = [run.replay.sample(run.config.replay_batch()[0]) for run in self.runs]
        metrics = self.stack.update(batches)
        for i, averager in enumerate(losses):
            averager.add({key: value[i] for key, value in metrics.items()})

    def run_offline(self) -> None:
        first = self.runs[0]
        total = first.spec.offline_steps
        if total == 0:  # nothing to update: each member evaluates its untrained policy
            for run in self.runs:
                run.run_offline(0)
            return
        losses = [LossAverager() for _ in self.runs]
        for run in self.runs:
            run.start_phase("offline", 0)
        for step in range(total):
            self._update(losses)
            self._steps_done("offline", step + 1, total, losses)
        for run in self.runs:
            run.charge_time("offline")

    def run_online(self) -> None:
        first = self.runs[0]
        total, updates = first.spec.online_steps, first.config.updates_per_env_step
        self.stack.begin_online()
        where = [run.reset_online() for run in self.runs]  # (observation, goals) of each member
        losses = [LossAverager() for _ in self.runs]
        for run in self.runs:
            run.start_phase("online", 0)
        for step in range(total):
            inputs = torch.cat([run.policy_input(observation, goals.current)
                                for run, (observation, goals) in zip(self.runs, where)])
            # One copy to the device for all S observations and one back for all S actions.
            units = self.stack.act(inputs[:, None], deterministic=False)[:, 0].cpu()
            for i, run in enumerate(self.runs):
                observation, goals = where[i]
                action, unit = run.env_action(observation, units[i])
                where[i] = run.practise(observation, goals, action, unit)
            for _ in range(updates):
                self._update(losses)
            self._steps_done("online", step + 1, total, losses)
        for run in self.runs:
            run.charge_time("online")

    def execute(self) -> list[RunOutcome]:
        for run in self.runs:
            run.begin(batched_seeds=len(self.runs))
        try:
            self.run_offline()
            if self.runs[0].learns_online:
                self.run_online()
        except KeyboardInterrupt:
            return [run.interrupted() for run in self.runs]
        except Exception as exc:  # the group's failure is each member's
            return [run.finish(RunState.FAILED, f"{type(exc).__name__}: {exc}") for run in self.runs]
        finally:
            for run in self.runs:
                run.close()
        return [run.finish(RunState.COMPLETED, None) for run in self.runs]
