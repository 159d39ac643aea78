"""The harness for Planning to Practice (PTP) and its baselines: VAL's latent run, with subgoal plans in every episode.

    offline  A. the VQ-VAE on D's images (as VAL), then encode D
             B. the conditional subgoal generators, one per planning level, on chains of D's
                latents (train curves: phase "subgoals")
             C. goal-conditioned IQL on latents with future relabeling (the shared offline phase)
    online   Algorithm 8 in the run's environment: each episode poses the *target task* (its goal
             image is s_g), plans subgoals from s_0 to s_g, and follows them: the policy is
             conditioned on the current subgoal, which advances when it is reached (latent distance
             below ``reach_epsilon``, about one step's motion) or after dt steps; the last target
             is s_g itself. Transitions are stored with the subgoal they were commanded by.
    evaluate the same plan-and-follow with deterministic actions; success on privileged state at
             the episode's last step; planning seconds per episode recorded; the decoded plans of
             the evaluation episodes saved as ``subgoals_{offline,online}.png`` (Figure 52's form).
``gc-iql`` (no planner) follows the final goal only. With ``representation=state`` (the tabletop's
privileged state, as ``val-state``) the same run plans between standardized states: planning before
pictures. ``ptp-state`` (``StatePlanningRun`` below) is the planner on OGBench's state datasets.
"""

from __future__ import annotations

import io
import time
from typing import Any, Callable

import numpy as np
import torch

from bench.algorithms.ptp import PTP, StatePTP
from bench.algorithms.representations import to_uint8_images
from bench.algorithms.subgoals import SubgoalSchedule
from bench.errors import InvalidInput
from bench.evaluation.harness import LossAverager, median_distance_apart
from bench.evaluation.pixels import PixelGoalRun, artifact_path
from bench.evaluation.states import StateRun

SHOWN_PLANS = 10  # evaluation episodes whose plans go into the subgoal figure (all, at the default 10)


class PlanningRun(PixelGoalRun):
    algorithm: PTP

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.timings.update(planning_seconds=0.0, generator_seconds=0.0, plans_made=0)

    # -- offline: generators after the representation ------------------------------------------------------
    def _prepare_latents(self) -> None:
        super()._prepare_latents()
        # The space plans live in. VQ-VAE latents are planned as they are. On the privileged state the
        # coordinates are standardized first (as ptp-state's), so that metres, the drawer's travel and
        # 0/1 flags all count in the generators' loss, the plan's cost and "reached".
        if self.config.representation == "state":
            self.plan_mean, self.plan_std = self._tensor(self.state_mean), self._tensor(self.state_std)
        else:
            self.plan_mean, self.plan_std = (torch.tensor(value, device=self.device) for value in (0.0, 1.0))
        planned = self._to_plan(self.latents)
        self.reach_epsilon = reach_epsilon(self.config, planned, self.obs_episode_end)
        self.algorithm.planner.use_data(planned, self.obs_episode_end)
        train_generators(self, planned, self.obs_episode_end)

    # -- planning ------------------------------------------------------------------------------------------------
    def _to_plan(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.plan_mean) / self.plan_std

    def _from_plan(self, planned: torch.Tensor) -> torch.Tensor:
        return planned * self.plan_std + self.plan_mean

    @torch.no_grad()
    def _feasibility(self, states: torch.Tensor, subgoals: torch.Tensor) -> torch.Tensor:
        """V(s, s') of the goal-conditioned IQL: how reachable s' is from s (eq. 51's constraint); both planned."""
        states, subgoals = self._from_plan(states), self._from_plan(subgoals)
        obs = torch.cat([self._policy_state(states), self.goal_normalizer(subgoals)], 1)
        return self.algorithm.rl.value(obs)

    def _schedule(self, z0: torch.Tensor, z_goal: torch.Tensor, remember: bool) -> tuple["MappedSchedule", float]:
        """Plan (timed) and the schedule that follows the plan, seen in latent space; the planning seconds.
        Practice plans draw from the run's stream, evaluation plans from their own (evaluation perturbs
        no training)."""
        rng = self.generator if remember else self._evaluation_rng
        targets, seconds = planned_targets(self, self._to_plan(z0), self._to_plan(z_goal), remember, rng)
        schedule = SubgoalSchedule(targets, self.algorithm.planner.subgoal_interval, self.reach_epsilon)
        return MappedSchedule(schedule, self._from_plan, self._to_plan), seconds

    # -- evaluation ----------------------------------------------------------------------------------------------
    def _evaluation_goals(self, z0: torch.Tensor, z_goal: torch.Tensor, observation: dict, info: dict) -> "MappedSchedule":
        """Plan from s_0 to the goal (not remembered: evaluation leaves the plan buffer alone) and follow it."""
        schedule, seconds = self._schedule(z0, z_goal, remember=False)
        self._evaluation_plans.append(seconds)
        if len(self._shown) < SHOWN_PLANS and self.observation_key == "image":  # states have no pictures to show
            self._shown.append((observation["image"], schedule.targets, info["goal_image"]))
        return schedule

    def evaluate(self) -> dict[str, Any]:
        self._evaluation_plans, self._shown = [], []
        self._evaluation_rng = torch.Generator().manual_seed(self.spec.seed)
        return super().evaluate()

    def _after_evaluation(self) -> dict[str, Any]:
        self._save_plans(self._shown)
        return {"plan_seconds": float(np.mean(self._evaluation_plans))}

    # -- online practice (Algorithm 8) ------------------------------------------------------------------------------
    def run_online(self, start: int) -> None:
        self._ensure_latents()
        c = self.config
        total, losses = self.spec.online_steps, LossAverager()
        observation, initial, schedule = self._new_practice_episode()
        z = self._encode_one(observation[self.observation_key], initial)
        self.start_phase("online", start)
        for step in range(start, total):
            observation, z, terminated, truncated = self._practice_step(z, schedule.current, initial)
            schedule.observe(z)
            if terminated or truncated:
                self.online.end_episode()
                observation, initial, schedule = self._new_practice_episode()
                z = self._encode_one(observation[self.observation_key], initial)
            for _ in range(c.updates_per_env_step):
                losses.add(self.algorithm.update(self.replay.sample(c.replay_batch()[0])))
            self.step_done("online", step + 1, total, losses)
        self.charge_time("online")
        self._save_grids("online")

    def _new_practice_episode(self):
        """Algorithm 8 l.4-6: reset, take the target task's goal s_g, plan s^_(1:K) (remembered in the plan buffer)."""
        observation, info = self.env.reset(seed=int(self.rng.integers(2**31)))
        initial = observation[self.observation_key]
        self.online_images.append(initial)
        z0 = self._encode_one(initial, initial)
        z_goal = self._encode_one(info[self.goal_key], initial)
        self.online_initial.append(z0)
        self.online_bank.append(None)
        schedule, seconds = self._schedule(z0, z_goal, remember=True)
        self._clock += seconds  # planning is charged to planning_seconds, not to training
        return observation, initial, schedule

    # -- artifacts ------------------------------------------------------------------------------------------------------
    def _save_plans(self, shown: list[tuple[np.ndarray, torch.Tensor, np.ndarray]]) -> None:
        """One row per evaluation episode: s_0, the decoded subgoals in order, the goal image (Figure 52)."""
        from PIL import Image

        if not shown:
            return
        rows = []
        for initial, targets, goal_image in shown:
            decoded = to_uint8_images(self.algorithm.decode(targets[:-1])).cpu() if len(targets) > 1 else []
            frames = [torch.from_numpy(np.ascontiguousarray(initial)), *decoded,
                      torch.from_numpy(np.ascontiguousarray(goal_image))]
            rows.append(torch.cat(frames, dim=1))
        width = max(row.shape[1] for row in rows)
        rows = [torch.nn.functional.pad(row, (0, 0, 0, width - row.shape[1]), value=255) for row in rows]
        grid = torch.cat(rows, dim=0).numpy()
        buffer = io.BytesIO()
        Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(buffer, "PNG")
        name = f"subgoals_{self.phase}.png"
        self.storage.write_bytes(artifact_path(self.spec.run_id, name), buffer.getvalue())
        if name not in self.artifacts:
            self.artifacts.append(name)

    def extra_results(self) -> dict[str, Any]:
        return {**super().extra_results(), **planner_results(self.algorithm.planner, self.config, self.timings),
                "reach_epsilon": self.reach_epsilon}


def train_generators(run, states: torch.Tensor, episode_end: torch.Tensor) -> None:
    """Eq. 50 for every level on chains of ``states`` (train curves: phase "subgoals"), unless already trained
    (a planner over the data's transitions has nothing to train)."""
    c, planner = run.config, run.algorithm.planner
    if not planner.learned or planner.updates >= c.generator_steps:
        return
    started = time.perf_counter()
    losses = LossAverager()
    # Streams of their own (torch's global one forked): the offline phase after them draws the same
    # numbers whatever the planner, so PTP's variants share one offline policy (model_cache).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(run.spec.seed)
        generator = torch.Generator().manual_seed(run.spec.seed)
        for step in range(planner.updates, c.generator_steps):
            losses.add(planner.update(states, episode_end, c.generator_batch_size, generator))
            if (step + 1) % run.spec.log_every == 0 or step + 1 == c.generator_steps:
                run.recorder.metrics(run.spec.run_id, "train", "subgoals", step + 1, losses.pop())
                run.report_progress(run.spec.run_id, "subgoals", step + 1, c.generator_steps)
    run.timings["generator_seconds"] = run.timings.get("generator_seconds", 0.0) + time.perf_counter() - started


def reach_epsilon(config, states: torch.Tensor, episode_end: torch.Tensor) -> float:
    """Algorithm 8's "reached" distance: the config's, or the median distance between consecutive states of D.

    About one step's motion: a subgoal counts as reached only when the state is as close to it as
    one step moves. (The VQ-VAE's distance saturates after a few steps, so the reward's eps, the
    median 5-step distance, already covers most of a 12-step subgoal and would skip through a plan.)
    """
    if config.reach_epsilon > 0:
        return float(config.reach_epsilon)
    return median_distance_apart(states, episode_end, 1)


def planned_targets(run, start: torch.Tensor, goal: torch.Tensor, remember: bool,
                    rng: torch.Generator) -> tuple[torch.Tensor, float]:
    """The run's planner from ``start`` to ``goal`` (subgoals, then the goal), and the seconds it took, also
    added to the run's planning time."""
    planner = run.algorithm.planner
    began = time.perf_counter()
    targets = planner.targets(start, goal, run._feasibility, remember, rng)
    if not planner.active:
        return targets, 0.0
    seconds = time.perf_counter() - began
    run.timings["planning_seconds"] += seconds
    run.timings["plans_made"] += 1
    return targets, seconds


def planner_results(planner, config, timings: dict[str, float]) -> dict[str, Any]:
    settings = planner.settings
    return {"planner": {"kind": config.planner, "generator": planner.kind,
                        "levels": settings.levels if planner.active else 0,
                        "subgoals": settings.total_subgoals if planner.active else 0,
                        "intervals": planner.intervals, "samples": settings.samples, "plan_buffer": config.plan_buffer},
            "seconds_per_plan": timings.get("planning_seconds", 0.0) / max(timings.get("plans_made", 0), 1)}


# -- the same planner on states (OGBench goal-conditioned datasets) ---------------------------------------------------
class StatePlanningRun(StateRun):
    """``ptp-state``: subgoals planned between normalized states, followed by the goal-conditioned IQL policy.

    The generators train on the data's normalized states before the offline phase; every episode
    (practice and evaluation) plans from s_0 to the task's goal observation and hands the policy
    the current subgoal (``episode_goals``). OGBench data carries no goals, so training relabels
    every goal (70% future, 30% random); the commanded subgoals shape which data is collected.
    """

    algorithm: StatePTP

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.layout.goal_mode != "observation":
            raise InvalidInput(f"{self.spec.algorithm} plans between observations: it needs an OGBench "
                               f"goal-conditioned dataset, and {self.spec.dataset_id} is not one")
        self.generator = torch.Generator().manual_seed(self.spec.seed)
        self.timings.update(planning_seconds=0.0, generator_seconds=0.0, plans_made=0)
        states = self.normalize(self.layout.state(self.dataset.data.observations, batched=True))
        self.states = torch.from_numpy(states).to(self.device)
        self.obs_episode_end = torch.from_numpy(self.dataset.obs_row_of_episode_end).to(self.device)
        self.algorithm.planner.use_data(self.states, self.obs_episode_end)  # also when resumed online
        self.reach_epsilon = reach_epsilon(self.config, self.states, self.obs_episode_end)
        self.mean, self.std = (torch.from_numpy(array).to(self.device) for array in (self.state_mean, self.state_std))

    def run_offline(self, start: int) -> None:
        train_generators(self, self.states, self.obs_episode_end)
        super().run_offline(start)

    @torch.no_grad()
    def _feasibility(self, states: torch.Tensor, subgoals: torch.Tensor) -> torch.Tensor:
        # The policy's inputs are (normalized state, normalized goal): plans live in that space already.
        return self.algorithm.value(torch.cat([states, subgoals], 1))

    def episode_goals(self, observation: Any, goal: np.ndarray | None, practice: bool) -> "MappedSchedule":
        """The plan from ``observation`` to ``goal``, seen by the harness as raw goal observations."""
        start = self._normalized_state(observation)
        target = torch.from_numpy(self.normalize(np.asarray(goal, np.float32).reshape(-1))).to(self.device)
        rng = self.generator if practice else self._evaluation_rng  # evaluation perturbs no training stream
        targets, seconds = planned_targets(self, start, target, practice, rng)
        if practice:
            self._clock += seconds  # charged to planning, not to training
        schedule = SubgoalSchedule(targets, self.algorithm.planner.subgoal_interval, self.reach_epsilon)
        return MappedSchedule(schedule, lambda planned: (planned * self.std + self.mean).cpu().numpy(),
                              self._normalized_state)

    def _normalized_state(self, observation: Any) -> torch.Tensor:
        return torch.from_numpy(self.normalize(self.layout.state(observation))).to(self.device)

    def evaluate(self) -> dict[str, Any]:
        self._evaluation_rng = torch.Generator().manual_seed(self.spec.seed)
        seconds, plans = self.timings["planning_seconds"], self.timings["plans_made"]
        values = super().evaluate()
        made = self.timings["plans_made"] - plans
        values["plan_seconds"] = (self.timings["planning_seconds"] - seconds) / made if made else 0.0
        return values

    def extra_results(self) -> dict[str, Any]:
        return {**planner_results(self.algorithm.planner, self.config, self.timings), "reach_epsilon": self.reach_epsilon}


class MappedSchedule:
    """A ``SubgoalSchedule`` kept in the space plans live in, seen from the space the harness acts in:
    ``current`` and ``targets`` mapped out by ``outward``, observations mapped in by ``inward``."""

    def __init__(self, schedule: SubgoalSchedule, outward: Callable[[torch.Tensor], Any],
                 inward: Callable[[Any], torch.Tensor]):
        self.schedule, self.outward, self.inward = schedule, outward, inward

    @property
    def current(self) -> Any:
        return self.outward(self.schedule.current)

    @property
    def targets(self) -> Any:
        return self.outward(self.schedule.targets)

    def observe(self, observation: Any) -> None:
        self.schedule.observe(self.inward(observation))
