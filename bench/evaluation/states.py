"""The run on states: observations as they are (flat, dict or goal-conditioned), for BC, AWAC, IQL, CQL and kin.

    offline buffer  <- the dataset's transitions, states normalized, actions in [-1, 1], goals relabeled
    offline phase   <- N updates on batches from it
    residual RL     <- with a controller pi_H (``--set controller=...``, ch. 5-6), every action executed is
                       pi_H(s) + the policy's, and the policy learns (and the replay holds) the residual:
                       the dataset's actions become a - pi_H(s)
    online phase    <- M environment steps with the stochastic policy, each followed by updates on
                       batches mixing offline and online transitions; with resets to demonstration
                       states (ch. 4.4.4), a share of these episodes starts inside a demonstration
    evaluation      <- E episodes with the deterministic policy on fixed seeds
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from bench.algorithms import build_algorithm, get_algorithm
from bench.algorithms.config import COMPILE_AUTO_UPDATES, config_from_json
from bench.algorithms.replay import GoalNormalizer, RelabelShares, Replay, TransitionBuffer
from bench.evaluation.controllers import ResidualComposition, controller_for, source_run
from bench.evaluation.harness import ActionScaler, FixedGoal, LossAverager, PhaseResults, Run
from bench.evaluation.layouts import ObservationLayout, evaluation_seed, observation_at, success_of
from bench.evaluation.specs import ProgressCallback, RunSpec
from bench.evaluation.store import Recorder
from bench.evaluation.streamed import StreamedOffline, state_statistics
from bench.errors import InvalidInput
from bench.platform.settings import Settings


class DemonstrationStarts:
    """Ch. 4.4.4's resets: a demonstration drawn uniformly, one of its states drawn uniformly, and as the
    goal the state the demonstration finally achieved (as HER's "final" relabeling would set it).

    Needs the simulator's state with every observation (``infos/sim_state``, recorded by recipes with
    ``record_sim_state``) and an environment that can be put in one (``reset_to(state, goal)``)."""

    def __init__(self, dataset, layout: ObservationLayout, env):
        states = dataset.data.infos.get("sim_state")
        if states is None:
            raise InvalidInput(f"resets to demonstration states need the simulator's state with each observation "
                               f"(infos/sim_state); {dataset.id} has none (the fetch/stack* recipes record it)")
        if not hasattr(env.unwrapped, "reset_to"):
            raise InvalidInput(f"resets to demonstration states need an environment that can be put in a recorded "
                               f"state; {env.spec.id if env.spec else type(env).__name__} cannot")
        if layout.goal_mode != "dict":
            raise InvalidInput("resets to demonstration states need goal-conditioned data (achieved goals)")
        data = dataset.data
        self.states = np.asarray(states, np.float64)
        self.starts, self.lengths = data.obs_starts, np.asarray(data.lengths)
        self.final_goals = layout.achieved(data.observations)[self.starts + self.lengths]

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(simulator state, goal): a state the demonstrator acted in (x_0 .. x_(T-1)) and its final achieved goal."""
        episode = int(rng.integers(len(self.starts)))
        row = int(self.starts[episode] + rng.integers(self.lengths[episode]))
        return self.states[row], self.final_goals[episode]


class RunPolicy:
    """A finished run's deterministic policy as a controller pi_H (ch. 5.5.4: a policy trained before, here the
    controller a residual improves on): the run rebuilt from its spec, its final checkpoint loaded, acting as
    it was evaluated (its own controller included, if it had one)."""

    def __init__(self, spec: RunSpec, settings: Settings):
        # Rebuilding a run seeds torch with its seed: keep the random numbers of the run that uses it.
        torch_state = torch.get_rng_state()
        try:
            self.run = StateRun(spec, settings, recorder=None)
            if not self.run.load_checkpoint():
                raise InvalidInput(f"controller=run:{spec.run_id}: the run has no checkpoint to load")
        finally:
            torch.set_rng_state(torch_state)
        self.run.eval_env.close()
        self.run.env.close()

    def __call__(self, observation: Any) -> np.ndarray:
        return self.run.act(observation, None, deterministic=True)[0]


class StateRun(Run):
    """A run whose policy sees the environment's observations (through their ``ObservationLayout``)."""

    def __init__(self, spec: RunSpec, settings: Settings, recorder: Recorder,
                 progress: ProgressCallback | None = None, dataset=None):
        super().__init__(spec, settings, recorder, progress, dataset)
        # Evaluation gets its own environment, so it never disturbs an online episode in progress.
        # Environment options (actuation noise and bias, variation) are the run's: recorded in its spec;
        # evaluation may add its own (tested in another setting than practised).
        self.env = self.dataset.make_env(**(spec.env_overrides or {}))
        self.eval_env = self.dataset.make_env(**{**(spec.env_overrides or {}), **(spec.eval_env_overrides or {})})
        algorithm_spec = get_algorithm(spec.algorithm)
        self.config = config_from_json(algorithm_spec.config_class, spec.config)
        self.layout = ObservationLayout.of(self.dataset.manifest.get("env"), self.dataset.observation_space,
                                           self.config.observation_keys)
        self.actions = ActionScaler(self.env.action_space)
        env_name = (self.dataset.manifest.get("env") or {}).get("name") or ""
        if source_run(self.config.controller) is not None:
            if spec.controller_run is None:
                raise InvalidInput(f"controller={self.config.controller}: a run's policy is resolved when its sweep "
                                   f"is planned, and this spec has none")
            controller = RunPolicy(RunSpec.from_json(spec.controller_run), settings)
        else:
            controller = controller_for(self.config, env_name)
        # Residual RL (ch. 5-6): the policy's actions are residuals around the controller's.
        self.residual = ResidualComposition(controller, self.env.action_space) if controller is not None else None
        # A version too large to load: the arrays the run reads are loaded alone, or, when even they do not
        # fit, streamed (bench.evaluation.streamed).
        self.streamed = self.dataset.lazy and not self.arrays_fit(self._arrays_read())
        if self.streamed:
            self._build_streamed_offline(algorithm_spec)
        else:
            if self.dataset.lazy:
                self.narrow_dataset(self._arrays_read())
            self._build_offline_buffer(algorithm_spec)
        goal_dim = 0 if self.offline.goal is None else self.offline.goal.shape[1]
        action_dim = self.offline.action_dim if self.streamed else self.offline.action.shape[1]
        self.algorithm = self.place(build_algorithm(spec.algorithm, self.config, self.state_mean.shape[0] + goal_dim,
                                                    action_dim))
        if self.residual is not None:
            self.algorithm.start_near_zero()  # learning starts from the controller (ch. 5.3)
        self.learns_online = self.algorithm.learns_online and spec.online_steps > 0
        total_updates = spec.offline_steps + (spec.online_steps * self.config.updates_per_env_step
                                              if self.learns_online else 0)
        if self.config.compile == "on" or (self.config.compile == "auto" and total_updates >= COMPILE_AUTO_UPDATES):
            self.algorithm.compile_losses()
        self.online = (TransitionBuffer(spec.online_steps, self.state_mean.shape[0], action_dim,
                                        goal_dim, self.device) if self.learns_online else None)
        self.replay = Replay(self.offline, self.online, self.config.replay_batch()[1], self.relabel,
                             self.layout.goal_reward(self.env), self.goal_normalizer, self.reward_scale,
                             self.reward_shift, seed=spec.seed)
        self.demo_start_share = self.config.demonstration_start_share()
        self.demo_starts = (DemonstrationStarts(self.dataset, self.layout, self.env)
                            if self.demo_start_share > 0 and self.learns_online else None)
        self.results = {"offline": PhaseResults(), "online": PhaseResults()}
        self.timings: dict[str, float] = {"offline_seconds": 0.0, "online_seconds": 0.0, "eval_seconds": 0.0}
        self.phase, self.step = "offline", 0

    # -- data ------------------------------------------------------------------------------------
    reads_part_of_a_version = True

    def _arrays_read(self) -> list[str]:
        """The arrays of the version this run reads: its layout's (a controller reads whole observations), and the
        simulator states that resets to demonstration states need."""
        arrays = self.dataset.manifest["arrays"]
        paths = (self.layout.array_paths(arrays) if self.residual is None else
                 [path for path in arrays if path.split("/")[0] == "observations"])
        if self.config.demonstration_start_share() > 0 and "infos/sim_state" in arrays:
            paths.append("infos/sim_state")
        return paths

    def _build_streamed_offline(self, algorithm_spec) -> None:
        """The offline data as a chunk-shuffled stream (bench.evaluation.streamed), for a plain state run."""
        version, paths, c = self.dataset, self._arrays_read(), self.config
        returns = version.episode_table.column("return").to_numpy().astype(np.float64)
        unsupported = [why for why, applies in (
            ("goals", self.layout.goal_conditioned), ("a controller", self.residual is not None),
            ("resets to demonstration states", c.demonstration_start_share() > 0),
            ("a subset of episodes", algorithm_spec.algorithm_class.select_episodes(c, returns) is not None)) if applies]
        if unsupported:
            raise InvalidInput(
                f"{version.id}: the arrays this run reads decode to {version.array_bytes(paths) / 2**30:.1f} GiB, more "
                f"than BENCH_LOAD_MAX_BYTES ({self.load_max_bytes / 2**30:.1f} GiB), and a streamed run cannot have "
                f"{' or '.join(unsupported)}; raise BENCH_LOAD_MAX_BYTES if the machine has the memory")

        def state_of(observations):
            return self.layout.state(observations, batched=True)

        pixels = self.layout.pixel_columns(version.episode_range(0, 1, paths).observations)
        if c.normalize_observations:
            mean, std = state_statistics(version, paths, state_of, max(1, self.load_max_bytes // 16))
            self.state_mean, self.state_std = mean.astype(np.float32), (std + 1e-3).astype(np.float32)
        else:
            self.state_mean = np.zeros(len(pixels), np.float32)
            self.state_std = np.ones(len(pixels), np.float32)
        self.state_mean[pixels], self.state_std[pixels] = 0.0, 255.0
        self.offline = StreamedOffline(version, paths, state_of, self.normalize, self.actions.to_unit, self.device,
                                       self.spec.seed, self.load_max_bytes)
        self.relabel, self.goal_normalizer = RelabelShares(), None
        self._set_reward_transform(returns)

    def checkpoint_extras(self) -> dict[str, Any]:
        return {"offline_stream": self.offline.state_dict()} if self.streamed else {}

    def restore_extras(self, state: dict[str, Any]) -> None:
        if self.streamed and state.get("offline_stream") is not None:
            self.offline.load_state_dict(state["offline_stream"])

    def close(self) -> None:
        super().close()
        if self.streamed:
            self.offline.close()

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
        # Pixels enter as fractions of 255, never standardized: a pixel the data never saw change would
        # otherwise be divided by 1e-3 the first time it does.
        pixels = layout.pixel_columns(data.observations)
        self.state_mean[pixels], self.state_std[pixels] = 0.0, 255.0
        achieved = layout.achieved(data.observations)
        goals = layout.dataset_goal(data.observations)
        next_achieved = None if achieved is None else achieved.reshape(len(achieved), -1)[obs_rows[steps] + 1]
        goal = None if goals is None else goals.reshape(len(goals), -1)[obs_rows[steps]]
        self.offline = TransitionBuffer.from_arrays(
            self.normalize(state), self.normalize(next_state), self._unit_actions(obs_rows[steps], data.actions[steps]),
            data.rewards[steps], data.terminations[steps], kept_lengths, goal, next_achieved).to(self.device)

        c = self.config
        self.relabel = RelabelShares(c.relabel_keep, c.relabel_future, c.relabel_final, c.relabel_random)
        if layout.goal_conditioned and goals is None:
            # No goals in the data (OGBench): every goal comes from relabeling; "keep" becomes "future".
            self.relabel = RelabelShares(0.0, c.relabel_keep + c.relabel_future, c.relabel_final, c.relabel_random)
        self.goal_normalizer = None
        if layout.goal_mode == "dict" and c.normalize_observations:
            self.goal_normalizer = GoalNormalizer(torch.as_tensor(next_achieved.mean(0), device=self.device),
                                                  torch.as_tensor(next_achieved.std(0) + 1e-3, device=self.device))
        elif layout.goal_mode == "observation":
            self.goal_normalizer = GoalNormalizer(torch.as_tensor(self.state_mean, device=self.device),
                                                  torch.as_tensor(self.state_std, device=self.device))
        self._set_reward_transform(kept_returns)

    def _set_reward_transform(self, returns: np.ndarray) -> None:
        """reward_scale and reward_shift from the config and the returns of the episodes trained on."""
        c = self.config
        self.reward_scale, self.reward_shift = 1.0, 0.0
        if c.reward_transform == "returns" and len(returns) > 1 and np.ptp(returns) > 0:
            self.reward_scale = float(1000.0 / np.ptp(returns))
        elif c.reward_transform == "minus_one":
            self.reward_shift = -1.0
        self.reward_scale, self.reward_shift = self.reward_scale * c.reward_scale, self.reward_shift * c.reward_scale

    def _unit_actions(self, rows: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The dataset's actions as the policy will learn them, in [-1, 1]: as they are, or with a controller,
        the residual a - pi_H(s) of each (what the controller would have added to reach them)."""
        if self.residual is None:
            return self.actions.to_unit(actions)
        observations = self.dataset.data.observations
        residuals = [self.residual.residual_of(observation_at(observations, row), action)
                     for row, action in zip(rows, actions)]
        return np.asarray(residuals, np.float32).reshape(len(rows), actions.shape[1])

    def normalize(self, state: np.ndarray) -> np.ndarray:
        return ((state - self.state_mean) / self.state_std).astype(np.float32)

    def policy_input(self, observation: Any, goal: np.ndarray | None) -> torch.Tensor:
        """The policy's input on the run's device: one host-to-device copy per step."""
        state = self.normalize(self.layout.state(observation))
        if goal is not None:
            state = np.concatenate([state, np.asarray(goal, np.float32).reshape(-1)])
        state = torch.from_numpy(state).to(self.device).unsqueeze(0)
        if goal is not None and self.goal_normalizer is not None:
            width = self.state_mean.shape[0]
            state = torch.cat([state[:, :width], self.goal_normalizer(state[:, width:])], dim=1)
        return state

    def act(self, observation: Any, goal: np.ndarray | None, deterministic: bool) -> tuple[np.ndarray, np.ndarray]:
        """(action for the environment, the policy's action in [-1, 1]); with a controller, the environment's
        action is pi_H(s) + the policy's (eq. 23) and the policy's is the residual the replay stores."""
        return self.env_action(observation, self.algorithm.act(self.policy_input(observation, goal), deterministic)[0])

    def env_action(self, observation: Any, policy_action: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """``act``'s pair from the policy's action for ``observation`` (one device-to-host copy)."""
        unit = policy_action.cpu().numpy().astype(np.float64)
        if self.residual is not None:
            return self.residual.execute(observation, unit), unit
        return self.actions.to_env(unit).astype(self.env.action_space.dtype), unit

    # -- evaluation ----------------------------------------------------------------------------------
    def evaluate(self) -> dict[str, Any]:
        started = time.perf_counter()
        returns, successes, lengths = [], [], []
        reported = False  # whether the environment has a success signal at all
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
                flag = success_of(info)
                reported = reported or flag is not None
                step_success = bool(flag)
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
                # None, not 0: a rate of 0 would claim every episode failed a task the environment does not define
                "success_rate": float(np.mean(successes)) if reported else None, "episodes": len(returns),
                "episode_length": float(np.mean(lengths))}

    # -- phases ------------------------------------------------------------------------------------------
    def run_online(self, start: int) -> None:
        total, losses = self.spec.online_steps, LossAverager()
        observation, goals = self.reset_online()
        self.start_phase("online", start)
        for step in range(start, total):
            action, unit = self.act(observation, goals.current, deterministic=False)
            observation, goals = self.practise(observation, goals, action, unit)
            for _ in range(self.config.updates_per_env_step):
                losses.add(self.algorithm.update(self.replay.sample(self.config.replay_batch()[0])))
            self.step_done("online", step + 1, total, losses)
        self.charge_time("online")

    def practise(self, observation: Any, goals: "FixedGoal", action: np.ndarray,
                 unit: np.ndarray) -> tuple[Any, "FixedGoal"]:
        """One online environment step: take ``action``, store the transition (the policy's ``unit``), and
        the observation and goals to act on next (a new episode's when this one ended)."""
        goal = goals.current
        next_observation, reward, terminated, truncated, info = self.env.step(action)
        achieved = self.layout.achieved(next_observation)
        self.online.add(self.normalize(self.layout.state(observation)), unit, float(reward),
                        self.normalize(self.layout.state(next_observation)), bool(terminated), goal,
                        None if achieved is None else achieved.reshape(-1))
        goals.observe(next_observation)
        if terminated or truncated:
            self.online.end_episode()
            return self.reset_online()
        return next_observation, goals

    def reset_online(self) -> tuple[Any, "FixedGoal"]:
        episode = int(self.rng.integers(2**31))
        observation, info = self.env.reset(seed=int(self.rng.integers(2**31)),
                                           options=self.layout.reset_options(episode))
        # Drawn only when resets are on, so runs without them see the same random numbers as before.
        if self.demo_starts is not None and self.rng.random() < self.demo_start_share:
            state, goal = self.demo_starts.draw(self.rng)
            observation = self.env.unwrapped.reset_to(state, goal)
        return observation, self.episode_goals(observation, self.layout.goal_after_reset(observation, info),
                                               practice=True)

    def episode_goals(self, observation: Any, goal: np.ndarray | None, practice: bool) -> "FixedGoal":
        """What the policy is conditioned on during an episode: the task's goal throughout.

        A planner overrides it to hand out subgoals (PTP on states, bench.evaluation.planning);
        ``practice`` tells an online episode from an evaluation one."""
        return FixedGoal(goal)
