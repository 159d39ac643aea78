"""The harness for Planning to Practice (PTP) and its baselines: VAL's latent run, with subgoal plans in every episode.

    offline  A. the VQ-VAE on D's images (as VAL), then encode D
             B. the conditional subgoal generators, one per planning level, on chains of D's
                latents (train curves: phase "subgoals")
             C. goal-conditioned IQL on latents with future relabeling (the shared offline phase)
    online   Algorithm 8 in the run's environment: each episode poses the *target task* (its goal
             image is s_g), plans subgoals from s_0 to s_g, and follows them: the policy is
             conditioned on the current subgoal, which advances when it is reached (latent distance
             below the reward's eps) or after dt steps; the last target is s_g itself. Transitions
             are stored with the subgoal they were commanded by.
    evaluate the same plan-and-follow with deterministic actions; success on privileged state at
             the episode's last step; planning seconds per episode recorded; the decoded plans of
             the evaluation episodes saved as ``subgoals_{offline,online}.png`` (Figure 52's form).
``gc-iql`` (no planner) follows the final goal only.
"""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import torch

from bench.algorithms.ptp import PTP
from bench.algorithms.subgoals import sample_chains
from bench.platform.harness import _LossAverager
from bench.platform.pixel_harness import PixelGoalRun, artifact_path
from bench.platform.tasks import evaluation_seed

SHOWN_PLANS = 4  # evaluation episodes whose plans go into the subgoal figure


class PlanningRun(PixelGoalRun):
    algorithm: PTP

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.timings.update(planning_seconds=0.0, generator_seconds=0.0, plans_made=0)
        lengths = np.asarray(self.lengths)
        # For every observation row, the row of its episode's last observation (chains stay in their episode).
        self.obs_episode_end = torch.from_numpy(np.repeat(self.obs_starts.numpy() + lengths, lengths + 1))

    # -- offline: generators after the representation ------------------------------------------------------
    def _prepare_latents(self) -> None:
        super()._prepare_latents()
        if self.algorithm.follows_plans and self.algorithm.generator_updates < self.config.generator_steps:
            self._train_generators()

    def _train_generators(self) -> None:
        """Eq. 50 for every level on chains of D's latents, links dt_l apart (dt drawn in [dt_l / 2, dt_l])."""
        c, algorithm = self.config, self.algorithm
        started = time.perf_counter()
        losses = _LossAverager()
        for step in range(algorithm.generator_updates, c.generator_steps):
            chains = [sample_chains(self.latents, self.obs_episode_end, interval, c.generator_links,
                                    c.generator_batch_size, self.generator) for interval in algorithm.intervals]
            losses.add(algorithm.update_generators(chains))
            if (step + 1) % self.spec.log_every == 0 or step + 1 == c.generator_steps:
                self.recorder.metrics(self.spec.run_id, "train", "subgoals", step + 1, losses.pop())
                self.report_progress(self.spec.run_id, "subgoals", step + 1, c.generator_steps)
        self.timings["generator_seconds"] += time.perf_counter() - started

    # -- planning ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _feasibility(self, states: torch.Tensor, subgoals: torch.Tensor) -> torch.Tensor:
        """V(s, s') of the goal-conditioned IQL: how reachable s' is from s (eq. 51's constraint)."""
        obs = torch.cat([self._normalize_latent(states), self.goal_normalizer(subgoals)], 1)
        return self.algorithm.rl.value(obs)

    def _targets(self, z0: torch.Tensor, z_goal: torch.Tensor, remember: bool) -> tuple[torch.Tensor, float]:
        """The goals the policy follows, in order: the planned subgoals, then s_g; and the planning seconds."""
        if not self.algorithm.follows_plans:
            return z_goal[None], 0.0
        started = time.perf_counter()
        result = self.algorithm.plan(z0, z_goal, self._feasibility, remember, self.generator)
        seconds = time.perf_counter() - started
        self.timings["planning_seconds"] += seconds
        self.timings["plans_made"] += 1
        return torch.cat([result.subgoals, z_goal[None]]), seconds

    def _advance(self, k: int, steps_on_k: int, z: torch.Tensor, targets: torch.Tensor) -> tuple[int, int]:
        """Algorithm 8: the next subgoal once this one is reached or its dt has run out."""
        if k == len(targets) - 1:
            return k, steps_on_k + 1
        reached = float((z - targets[k]).norm()) < self.algorithm.reward_epsilon
        if reached or steps_on_k + 1 >= self.algorithm.subgoal_interval:
            return k + 1, 0
        return k, steps_on_k + 1

    # -- evaluation ----------------------------------------------------------------------------------------------
    def evaluate(self) -> dict[str, Any]:
        self._ensure_latents()
        started = time.perf_counter()
        successes, returns, distances, plan_seconds, shown = [], [], [], [], []
        for episode in range(self.spec.eval_episodes):
            observation, info = self.eval_env.reset(seed=evaluation_seed(episode))
            initial = observation["image"]
            z = self._encode_one(initial, initial)
            z_goal = self._encode_one(info["goal_image"], initial)
            targets, seconds = self._targets(z, z_goal, remember=False)
            plan_seconds.append(seconds)
            if len(shown) < SHOWN_PLANS:
                shown.append((initial, targets, info["goal_image"]))
            k = steps_on_k = 0
            total, success = 0.0, False
            while True:
                action, _ = self._act(z, targets[k], deterministic=True)
                observation, reward, terminated, truncated, info = self.eval_env.step(action)
                z = self._encode_one(observation["image"], initial)
                k, steps_on_k = self._advance(k, steps_on_k, z, targets)
                total += float(reward)
                success = bool(info.get("success", False))  # the final step decides
                if terminated or truncated:
                    break
            distances.append(float((z - z_goal).norm()))
            successes.append(success)
            returns.append(total)
        self._save_plans(shown)
        self.timings["eval_seconds"] += time.perf_counter() - started
        return {"return": float(np.mean(returns)), "return_std": float(np.std(returns)), "normalized_score": None,
                "success_rate": float(np.mean(successes)), "episodes": len(successes),
                "final_latent_distance": float(np.mean(distances)), "plan_seconds": float(np.mean(plan_seconds))}

    # -- online practice (Algorithm 8) ------------------------------------------------------------------------------
    def run_online(self, start: int) -> None:
        self._ensure_latents()
        c = self.config
        total, losses = self.spec.online_steps, _LossAverager()
        observation, initial, targets = self._new_practice_episode()
        z = self._encode_one(observation["image"], initial)
        k = steps_on_k = 0
        self.phase, self.step, self._clock = "online", start, time.perf_counter()
        for step in range(start, total):
            target = targets[k]
            action, unit = self._act(z, target, deterministic=False)
            observation, _, terminated, truncated, _ = self.env.step(action)
            z_next = self._encode_one(observation["image"], initial)
            reward = float(self.algorithm.reward(z_next[None], target[None])[0])
            self.online_episode[self.online.size] = len(self.online_initial) - 1
            self.online.add(self._normalize_latent(z).numpy(), unit, reward, self._normalize_latent(z_next).numpy(),
                            False, target.numpy(), z_next.numpy())
            self.online_images.append(observation["image"])
            z = z_next
            k, steps_on_k = self._advance(k, steps_on_k, z, targets)
            if terminated or truncated:
                self.online.end_episode()
                observation, initial, targets = self._new_practice_episode()
                z = self._encode_one(observation["image"], initial)
                k = steps_on_k = 0
            for _ in range(c.updates_per_env_step):
                losses.add(self.algorithm.update(self.replay.sample(c.batch_size)))
            self._after_step("online", step + 1, total, losses)
        self._charge_time("online")
        self._save_grids("online")

    def _new_practice_episode(self):
        """Algorithm 8 l.4-6: reset, take the target task's goal s_g, plan s^_(1:K) (remembered in the plan buffer)."""
        observation, info = self.env.reset(seed=int(self.rng.integers(2**31)))
        initial = observation["image"]
        self.online_images.append(initial)
        z0 = self._encode_one(initial, initial)
        z_goal = self._encode_one(info["goal_image"], initial)
        self.online_initial.append(z0)
        self.online_bank.append(None)
        planning = time.perf_counter()
        targets, _ = self._targets(z0, z_goal, remember=True)
        self._clock += time.perf_counter() - planning  # planning is charged to planning_seconds, not training
        return observation, initial, targets

    # -- artifacts ------------------------------------------------------------------------------------------------------
    def _save_plans(self, shown: list[tuple[np.ndarray, torch.Tensor, np.ndarray]]) -> None:
        """One row per evaluation episode: s_0, the decoded subgoals in order, the goal image (Figure 52)."""
        from PIL import Image

        from bench.algorithms.representations import to_uint8_images

        if not shown:
            return
        rows = []
        for initial, targets, goal_image in shown:
            decoded = to_uint8_images(self.algorithm.decode(targets[:-1])) if len(targets) > 1 else []
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
        settings = self.algorithm.settings
        return {**super().extra_results(),
                "planner": {"kind": self.config.planner, "levels": settings.levels if self.algorithm.follows_plans else 0,
                            "subgoals": settings.total_subgoals if self.algorithm.follows_plans else 0,
                            "intervals": self.algorithm.intervals, "samples": settings.samples,
                            "plan_buffer": self.config.plan_buffer},
                "seconds_per_plan": self.timings["planning_seconds"] / max(self.timings["plans_made"], 1)}
