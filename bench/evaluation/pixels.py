"""The harness for learning from pixels with imagined goals (RIG, CC-RIG, VAL): the same run, phases fed with latents.

    offline  A. train the representation on the dataset's images (and VAL's PixelCNN on pairs
                (z_0, z_t) of the same episode); save a reconstruction grid and a sample grid
             B. encode every image; the replay holds latents, goals are relabeled in latent space
                (future states, imagined goals) and rewarded by the algorithm's latent reward;
                N AWAC updates
    online   in the run's new environment (``--online-env held-out``: a scene drawn from held-out
             shapes and colours): each episode encodes s_0, imagines a goal, acts, stores latents,
             updates; RIG fine-tunes its VAE every K episodes and re-encodes its buffers
    evaluate fixed episodes of the task: the goal is an image from a scripted success in the same
             scene, encoded by the representation; success is the task's check on privileged
             state at the episode's last step (the dissertation: "whether the final state of the
             policy's trajectory matches the state of the goal image within a chosen threshold")
On a GPU (``--device``) the images, latents, buffers and every network are there; the random streams
(``torch.Generator``) are CPU ones whose numbers are moved, so a seed draws the same rows and goals on any
device. The learner never sees the environment's privileged state: only ``observation["image"]``; the
exception is the diagnostic representation ``state`` (``val-state``), which reads
``observation["state"]`` and the goal's ``info["goal_state"]`` in place of the images.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.algorithms import build_algorithm, get_algorithm
from bench.algorithms.config import config_from_json
from bench.algorithms.config import offline_fields
from bench.algorithms.devices import random_rows
from bench.algorithms.latent_goals import (PROPOSER_FIELDS, REPRESENTATION_FIELDS, LatentGoalAlgorithm,
                                           separating_threshold)
from bench.algorithms.replay import GoalNormalizer, RelabelShares, Replay, TransitionBuffer
from bench.algorithms import representations as representations_module
from bench.algorithms.representations import to_uint8_images
from bench.errors import InvalidInput
from bench.evaluation.harness import ActionScaler, FixedGoal, LossAverager, PhaseResults, Run, median_distance_apart
from bench.evaluation.layouts import evaluation_seed
from bench.evaluation.model_cache import ModelCache, model_key, random_state, restore_random_state, source_digest
from bench.evaluation.specs import ProgressCallback, RunSpec
from bench.evaluation.store import Recorder
from bench.platform.settings import Settings

GRID_COLUMNS = 8
_PACKAGE = Path(__file__).resolve().parents[1]
# The offline policy is a function of all of the algorithms' code and of the harness that trains it.
OFFLINE_CODE = [*sorted((_PACKAGE / "algorithms").glob("*.py")), *[_PACKAGE / "evaluation" / name for name in
                ("harness.py", "pixels.py", "planning.py", "model_cache.py")]]


class PolicyView:
    """Goals as pi and Q see them: standardized, then the algorithm's view (the full latent, or pooled)."""

    def __init__(self, normalize: GoalNormalizer, view):
        self.normalize, self.view = normalize, view

    def __call__(self, goal: torch.Tensor) -> torch.Tensor:
        return self.view(self.normalize(goal))


def _moved(tensors: list[torch.Tensor | None], device) -> list[torch.Tensor | None]:
    return [None if tensor is None else tensor.to(device) for tensor in tensors]


def artifact_path(run_id: str, name: str) -> str:
    return f"_runs/{run_id}/artifacts/{name}"


class PixelGoalRun(Run):
    """A run of a ``LatentGoalAlgorithm``; reuses Run's phases bookkeeping, checkpoints and records."""

    def __init__(self, spec: RunSpec, settings: Settings, recorder: Recorder,
                 progress: ProgressCallback | None = None):
        super().__init__(spec, settings, recorder, progress)
        self.generator = torch.Generator().manual_seed(spec.seed)
        observations = self.dataset.data.observations
        self.config = config_from_json(get_algorithm(spec.algorithm).config_class, spec.config)
        # What the representation reads: images, or the privileged state for the diagnostic variant.
        self.observation_key = "state" if self.config.representation == "state" else "image"
        self.goal_key = f"goal_{self.observation_key}"
        if not isinstance(observations, dict) or self.observation_key not in observations:
            raise InvalidInput(f"{spec.algorithm} learns from {self.observation_key}s: {spec.dataset_id} has no "
                               f"'{self.observation_key}' observations")
        overrides = dict(spec.env_overrides or {})
        if not overrides.get("task"):
            raise InvalidInput(f"{spec.algorithm} is evaluated on a goal-image task: pass --task "
                               "(e.g. drawer-open, button-press, object-in-tray)")
        self.env = self.dataset.make_env(**overrides)
        self.eval_env = self.dataset.make_env(**overrides)
        self.actions = ActionScaler(self.env.action_space)
        data = self.dataset.data
        state_dim = observations[self.observation_key].shape[-1] if self.observation_key == "state" else 0
        self.algorithm: LatentGoalAlgorithm = self.place(build_algorithm(spec.algorithm, self.config, state_dim,
                                                                         data.actions.shape[1]))
        self.learns_online = spec.online_steps > 0
        # Images on the run's device (uint8; the state vectors for the state variant), and for every
        # observation row the row of its episode's s_0.
        self.images = self._tensor(observations[self.observation_key])
        lengths = np.asarray(data.lengths)
        obs_starts = self.dataset.obs_row_of_step[data.step_starts]
        self.initial_row = self._tensor(np.repeat(obs_starts, lengths + 1).astype(np.int64))
        self.obs_starts = self._tensor(obs_starts.astype(np.int64))
        self.lengths = lengths
        self.step_rows = self._tensor(self.dataset.obs_row_of_step.astype(np.int64))
        self.obs_episode_end = self._tensor(self.dataset.obs_row_of_episode_end)
        self.unit_actions = self.actions.to_unit(data.actions).astype(np.float32)
        self.online_images: list[np.ndarray] = []
        self.latents_ready = False
        self.calibration: dict[str, float] | None = None  # how eps was calibrated (epsilon_calibration=scripted)
        self.results = {"offline": PhaseResults(), "online": PhaseResults()}
        self.timings = {"offline_seconds": 0.0, "online_seconds": 0.0, "eval_seconds": 0.0,
                        "representation_seconds": 0.0}
        self.artifacts: list[str] = []
        self.phase, self.step = "offline", 0
        self.online = None
        self.models = ModelCache(self.storage, spec.run_id, spec.manifest_sha256, spec.reuse_models)
        self.model_keys = self._model_keys()

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        """A host array as a tensor on the run's device."""
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    def _model_keys(self) -> dict[str, str]:
        """The cache keys of the representation and the proposer; the offline policy's needs eps (``_offline_key``)."""
        c, spec = self.config, self.spec
        # Phase A's models are functions of the representations' code and of the few functions that build
        # and train them, not of the policy's code: a change to the RL keeps the VQ-VAE.
        phase_a = (representations_module, LatentGoalAlgorithm.__init__, LatentGoalAlgorithm.update_representation,
                   LatentGoalAlgorithm.update_proposer, LatentGoalAlgorithm.representation_state,
                   LatentGoalAlgorithm.proposer_state, PixelGoalRun.train_representation,
                   PixelGoalRun._representation_steps, PixelGoalRun._proposer_steps)
        code = source_digest(*phase_a)
        # A model trained on a GPU differs in its last bits from the CPU's: a run reuses only its device's,
        # so its results never depend on which device trained first (CPU keys are those from before devices).
        on_device = {} if self.device.type == "cpu" else {"device": self.device.type}
        keys = {"representation": model_key("representation", spec.manifest_sha256, spec.seed,
                                            {**{f: getattr(c, f) for f in REPRESENTATION_FIELDS}, **on_device}, [],
                                            code)}
        if self.algorithm.proposer is not None:
            keys["proposer"] = model_key("proposer", spec.manifest_sha256, spec.seed,
                                         {**{f: getattr(c, f) for f in PROPOSER_FIELDS}, **on_device},
                                         [keys["representation"]], code)
        return keys

    def _offline_key(self) -> str:
        """The offline policy's key: the models it learns on, every config field the offline phase reads,
        the RL learner, the number of updates and the reward's eps (set by the task's calibration)."""
        fields = {**offline_fields(self.config), "learner": type(self.algorithm.rl).__name__,
                  "offline_steps": self.spec.offline_steps, "reward_epsilon": float(self.algorithm.reward_epsilon)}
        return model_key("offline-policy", self.spec.manifest_sha256, self.spec.seed, fields,
                         list(self.model_keys.values()), source_digest(*OFFLINE_CODE))

    # -- phase A: representation and affordances ---------------------------------------------------
    def _initial_images(self, rows: torch.Tensor) -> torch.Tensor | None:
        return self.images[self.initial_row[rows]] if self.algorithm.representation.conditional else None

    def train_representation(self) -> None:
        """Phase A: the representation, then VAL's PixelCNN; each loaded from the model cache when stored.

        Each trains on random streams of its own, seeded by the run's seed (torch's global stream is
        forked), so the rest of the run draws the same numbers whether it trained or loaded them."""
        c, algorithm = self.config, self.algorithm
        started = time.perf_counter()
        if algorithm.representation.trainable and algorithm.representation_updates < c.representation_steps:
            key = self.model_keys["representation"]
            cached = self.models.load("representation", key)
            if cached is not None:
                algorithm.load_representation_state(cached)
            else:
                from_scratch = algorithm.representation_updates == 0  # not the rest of an interrupted phase A
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(self.spec.seed)
                    self._representation_steps(torch.Generator().manual_seed(self.spec.seed))
                if from_scratch:
                    self.models.store("representation", key, algorithm.representation_state())
        if algorithm.proposer is not None and algorithm.proposer_updates < c.proposer_steps:
            cached = self.models.load("proposer", self.model_keys["proposer"])
            if cached is not None:
                algorithm.load_proposer_state(cached)
            else:
                from_scratch = algorithm.proposer_updates == 0
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(self.spec.seed)
                    self._proposer_steps(torch.Generator().manual_seed(self.spec.seed))
                if from_scratch:
                    self.models.store("proposer", self.model_keys["proposer"], algorithm.proposer_state())
        self.timings["representation_seconds"] += time.perf_counter() - started

    def _representation_steps(self, generator: torch.Generator) -> None:
        c, algorithm = self.config, self.algorithm
        losses = LossAverager()
        n = len(self.images)
        for step in range(algorithm.representation_updates, c.representation_steps):
            rows = random_rows(0, n, c.representation_batch_size, generator, self.device)
            losses.add(algorithm.update_representation(self.images[rows], self._initial_images(rows)))
            if (step + 1) % self.spec.log_every == 0 or step + 1 == c.representation_steps:
                self.recorder.metrics(self.spec.run_id, "train", "representation", step + 1, losses.pop())
                self.report_progress(self.spec.run_id, "representation", step + 1, c.representation_steps)

    def _proposer_steps(self, generator: torch.Generator) -> None:
        """VAL's affordance model p(z_t | z_0): pairs of an episode's first image and a later one."""
        c, algorithm = self.config, self.algorithm
        losses = LossAverager()
        codes = torch.cat([algorithm.representation.codes_of(self.images[i:i + 512]).detach()
                           for i in range(0, len(self.images), 512)])
        n = len(self.images)
        for step in range(algorithm.proposer_updates, c.proposer_steps):
            rows = random_rows(0, n, c.proposer_batch_size, generator, self.device)
            losses.add(algorithm.update_proposer(codes[self.initial_row[rows]], codes[rows]))
            if (step + 1) % self.spec.log_every == 0 or step + 1 == c.proposer_steps:
                self.recorder.metrics(self.spec.run_id, "train", "affordances", step + 1, losses.pop())
                self.report_progress(self.spec.run_id, "affordances", step + 1, c.proposer_steps)

    # -- latents and replay -------------------------------------------------------------------------
    def _encode_all(self) -> torch.Tensor:
        initial = self.images[self.initial_row] if self.algorithm.representation.conditional else None
        return self.algorithm.encode(self.images, initial)

    def _prepare_latents(self) -> None:
        """Encode D, calibrate the reward threshold, build the buffers and proposal banks."""
        c, algorithm = self.config, self.algorithm
        latents = self._encode_all()
        self.latents = latents
        if c.goal_proposal == "data":
            algorithm.data_goals = latents
        if c.reward == "sparse" and algorithm.reward_epsilon <= 0:
            if c.epsilon_calibration == "scripted":
                algorithm.reward_epsilon, self.calibration = self._scripted_threshold()
            else:
                algorithm.reward_epsilon = median_distance_apart(latents, self.obs_episode_end, 5)
        steps = self.step_rows
        # The run's normalization, kept on the host (checkpoints) and on the device (every step).
        self.state_mean = latents.mean(0).cpu().numpy()
        self.state_std = (latents.std(0) + 1e-3).cpu().numpy()
        mean, std = self._tensor(self.state_mean), self._tensor(self.state_std)
        self._mean, self._std = mean, std
        z, z_next = latents[steps], latents[steps + 1]
        data = self.dataset.data
        self.offline = TransitionBuffer.from_arrays(
            self._policy_state(z).cpu().numpy(), self._policy_state(z_next).cpu().numpy(), self.unit_actions,
            np.zeros(data.num_steps, np.float32), np.zeros(data.num_steps, np.float32), self.lengths,
            None, z_next.cpu().numpy()).to(self.device)
        # Proposals for relabeling come per episode: z_0 of every episode, and for VAL a bank of
        # PixelCNN samples per episode (sampling it per batch would cost a PixelCNN pass per row).
        self.offline_episode = self._tensor(np.repeat(np.arange(len(self.lengths)), self.lengths))
        self.offline_initial = latents[self.obs_starts]
        self.offline_bank = self._bank(self.offline_initial)
        capacity = self.spec.online_steps
        self.online = TransitionBuffer(capacity, algorithm.view_dim, self.offline.action.shape[1], latents.shape[1],
                                       self.device) if self.learns_online else None
        self.online_episode = torch.zeros(max(capacity, 1), dtype=torch.long, device=self.device)
        self.online_initial: list[torch.Tensor] = []
        self.online_bank: list[torch.Tensor] = []
        shares = RelabelShares(c.relabel_keep, c.relabel_future, c.relabel_final, c.relabel_random,
                               c.relabel_proposal)
        self.goal_normalizer = PolicyView(GoalNormalizer(mean, std), algorithm.view)
        self.replay = Replay(self.offline, self.online, c.replay_batch()[1], shares, self._goal_reward,
                             self.goal_normalizer, seed=self.spec.seed, propose=self._propose_for_rows)
        self.latents_ready = True

    def _scripted_threshold(self) -> tuple[float, dict[str, float]]:
        """eps from scripted attempts at the run's task in training-split scenes: the distance that best
        separates their successful ends from their nearest misses (``separating_threshold``)."""
        overrides = {**(self.spec.env_overrides or {}), "scene_split": "train", "scene_seed": None}
        env = self.dataset.make_env(**overrides)
        try:
            examples = getattr(env.unwrapped, "goal_examples", None)
            if examples is None:
                raise InvalidInput("epsilon_calibration=scripted needs an environment with scripted goal examples "
                                   "(the tabletop); set reward_epsilon or epsilon_calibration=median-5-step")
            found = examples(self.config.calibration_attempts, seed=self.spec.seed)
        finally:
            env.close()
        if len(found["goal"][self.observation_key]) < 2:
            raise InvalidInput("too few scripted attempts reached the task's goal to calibrate eps")
        goal, reached, missed = (self._tensor(found[k][self.observation_key]) for k in ("goal", "reached", "missed"))
        context = goal if self.algorithm.representation.conditional else None  # same scene as s_0
        z_goal = self.algorithm.encode(goal, context)
        d_reached = (self.algorithm.encode(reached, context) - z_goal).norm(dim=1)
        d_missed = (self.algorithm.encode(missed, context) - z_goal).norm(dim=1)
        epsilon, accuracy = separating_threshold(d_reached, d_missed)
        return epsilon, {"attempts": len(goal), "balanced_accuracy": accuracy,
                         "reached_median": float(d_reached.median()), "missed_median": float(d_missed.median())}

    def _bank(self, initial: torch.Tensor) -> torch.Tensor | None:
        if self.config.goal_proposal != "pixelcnn":
            return None
        k = self.config.proposals_per_episode
        repeated = initial.repeat_interleave(k, dim=0)
        samples = torch.cat([self.algorithm.propose(repeated[i:i + 256], self.generator)
                             for i in range(0, len(repeated), 256)])
        return samples.view(len(initial), k, -1)

    def _propose_for_rows(self, buffer: TransitionBuffer, rows: torch.Tensor) -> torch.Tensor:
        if buffer is self.offline:
            episodes, initial, bank = self.offline_episode[rows], self.offline_initial, self.offline_bank
        else:
            episodes = self.online_episode[rows]
            initial = torch.stack(self.online_initial)
            bank = torch.stack(self.online_bank) if self.online_bank and self.online_bank[0] is not None else None
        if bank is None:
            return self.algorithm.propose(initial[episodes], self.generator)
        pick = random_rows(0, bank.shape[1], len(rows), self.generator, self.device)
        return bank[episodes, pick]

    def _goal_reward(self, achieved: np.ndarray, goal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        reward = self.algorithm.reward(self._tensor(achieved), self._tensor(goal)).cpu().numpy()
        return reward, np.zeros_like(reward)

    def _policy_state(self, z: torch.Tensor) -> torch.Tensor:
        """What pi and Q see of a latent: standardized, then the algorithm's view of it (``policy_view``)."""
        return self.algorithm.view((z - self._mean) / self._std)

    def _ensure_latents(self) -> None:
        if self.latents_ready:
            return
        c, algorithm = self.config, self.algorithm
        if ((algorithm.representation.trainable and algorithm.representation_updates < c.representation_steps)
                or (algorithm.proposer is not None and algorithm.proposer_updates < c.proposer_steps)):
            self.train_representation()
            self._save_grids("offline")
        self._prepare_latents()

    # -- acting ------------------------------------------------------------------------------------------
    def _encode_one(self, image: np.ndarray, initial: np.ndarray) -> torch.Tensor:
        images = self._tensor(image)[None]
        context = self._tensor(initial)[None] if self.algorithm.representation.conditional else None
        return self.algorithm.encode(images, context)[0]

    def _act(self, z: torch.Tensor, z_goal: torch.Tensor, deterministic: bool) -> tuple[np.ndarray, np.ndarray]:
        obs = torch.cat([self._policy_state(z), self.goal_normalizer(z_goal)])[None]
        unit = self.algorithm.act(obs, deterministic)[0].cpu().numpy().astype(np.float64)
        return self.actions.to_env(unit).astype(self.env.action_space.dtype), unit

    # -- evaluation --------------------------------------------------------------------------------------
    def evaluate(self) -> dict[str, Any]:
        """Fixed episodes of the task: success, stage progress and the final latent distance at the last step."""
        self._ensure_latents()
        started = time.perf_counter()
        successes, progress, returns, distances = [], [], [], []
        for episode in range(self.spec.eval_episodes):
            observation, info = self.eval_env.reset(seed=evaluation_seed(episode))
            initial = observation[self.observation_key]
            z = self._encode_one(initial, initial)
            z_goal = self._encode_one(info[self.goal_key], initial)
            goals = self._evaluation_goals(z, z_goal, observation, info)
            total = 0.0
            while True:
                action, _ = self._act(z, goals.current, deterministic=True)
                observation, reward, terminated, truncated, info = self.eval_env.step(action)
                z = self._encode_one(observation[self.observation_key], initial)
                goals.observe(z)
                total += float(reward)
                if terminated or truncated:
                    break
            # The final step decides (the dissertation: the final state against the goal's).
            successes.append(bool(info.get("success", False)))
            progress.append(float(info.get("stage_progress", successes[-1])))
            distances.append(float((z - z_goal).norm()))
            returns.append(total)
        extras = self._after_evaluation()
        self.timings["eval_seconds"] += time.perf_counter() - started
        return {"return": float(np.mean(returns)), "return_std": float(np.std(returns)), "normalized_score": None,
                "success_rate": float(np.mean(successes)), "stage_progress": float(np.mean(progress)),
                "episodes": len(successes), "final_latent_distance": float(np.mean(distances)), **extras}

    def _evaluation_goals(self, z0: torch.Tensor, z_goal: torch.Tensor, observation: dict, info: dict) -> FixedGoal:
        """What an evaluation episode's policy is conditioned on: the goal image's latent throughout."""
        return FixedGoal(z_goal)

    def _after_evaluation(self) -> dict[str, Any]:
        """Extra results of an evaluation (and its artifacts), after its episodes."""
        return {}

    # -- phases --------------------------------------------------------------------------------------------
    def run_offline(self, start: int) -> None:
        """The offline phase, or the offline policy of an earlier run with the same key, evaluated once."""
        self._ensure_latents()
        total = self.spec.offline_steps
        key = self._offline_key() if total > 0 else None
        if start == 0 and key is not None:
            cached = self.models.load("offline-policy", key)
            if cached is not None:
                self.algorithm.load_learner_state(cached["learner"])
                restore_random_state(cached["random"], self._training_generators(), self.rng, self.device)
                self._evaluate_and_checkpoint("offline", total)
                return
        super().run_offline(start)
        if start == 0 and key is not None:
            self.models.store("offline-policy", key, {"learner": self.algorithm.learner_state(),
                                                      "random": random_state(self._training_generators(), self.rng,
                                                                             self.device)})

    def _training_generators(self) -> dict[str, torch.Generator]:
        """The random streams training draws from (evaluation draws from none of them)."""
        return {"run": self.generator, "replay": self.replay.generator}

    def run_online(self, start: int) -> None:
        self._ensure_latents()
        c = self.config
        total, losses = self.spec.online_steps, LossAverager()
        observation, initial, z0, z_goal = self._new_episode()
        z = self._encode_one(observation[self.observation_key], initial)
        episodes_done = 0
        self.start_phase("online", start)
        for step in range(start, total):
            observation, z, terminated, truncated = self._practice_step(z, z_goal, initial)
            if terminated or truncated:
                self.online.end_episode()
                episodes_done += 1
                if c.finetune_every_episodes and episodes_done % c.finetune_every_episodes == 0:
                    self._finetune_representation()
                observation, initial, z0, z_goal = self._new_episode()
                z = self._encode_one(observation[self.observation_key], initial)
            for _ in range(c.updates_per_env_step):
                losses.add(self.algorithm.update(self.replay.sample(c.replay_batch()[0])))
            self.step_done("online", step + 1, total, losses)
        self.charge_time("online")
        self._save_grids("online")

    def _practice_step(self, z: torch.Tensor, z_goal: torch.Tensor, initial: np.ndarray):
        """Act towards ``z_goal``, store the transition (rewarded against that goal) and the image; the new latent."""
        action, unit = self._act(z, z_goal, deterministic=False)
        observation, _, terminated, truncated, _ = self.env.step(action)
        z_next = self._encode_one(observation[self.observation_key], initial)
        reward = float(self.algorithm.reward(z_next[None], z_goal[None])[0])
        self.online_episode[self.online.size] = len(self.online_initial) - 1
        self.online.add(self._policy_state(z), unit, reward, self._policy_state(z_next), False, z_goal, z_next)
        self.online_images.append(observation[self.observation_key])
        return observation, z_next, terminated, truncated

    def _new_episode(self):
        """Alg. 7 l.7-8: s_0 ~ p_new(s_0), z_g ~ p(z_t | z_0); the task's goal image is not used here."""
        episode = int(self.rng.integers(2**31))
        observation, _ = self.env.reset(seed=episode, options={"pose_task": False})
        initial = observation[self.observation_key]
        self.online_images.append(initial)
        z0 = self._encode_one(initial, initial)
        k = self.config.proposals_per_episode if self.config.goal_proposal == "pixelcnn" else 1
        proposals = self.algorithm.propose(z0[None].repeat(k, 1), self.generator)
        self.online_initial.append(z0)
        self.online_bank.append(proposals if self.config.goal_proposal == "pixelcnn" else None)
        return observation, initial, z0, proposals[0]

    def _finetune_representation(self) -> None:
        """RIG, Algorithm 1 l.16: fine-tune the VAE on D plus the new images, then re-encode the buffers."""
        c, algorithm = self.config, self.algorithm
        started = time.perf_counter()
        fresh = self._tensor(np.asarray(self.online_images))
        for _ in range(c.finetune_steps):
            half = c.representation_batch_size // 2
            rows = random_rows(0, len(self.images), c.representation_batch_size - half, self.generator,
                               self.device)
            new = random_rows(0, len(fresh), half, self.generator, self.device)
            algorithm.update_representation(torch.cat([self.images[rows], fresh[new]]), None)
        latents = self._encode_all()
        steps = self.step_rows
        self.offline.state[:] = self._policy_state(latents[steps])
        self.offline.next_state[:] = self._policy_state(latents[steps + 1])
        self.offline.next_achieved[:] = latents[steps + 1]
        self.offline.goal[:] = latents[steps + 1]
        self.offline_initial = latents[self.obs_starts]
        # Online rows: images were kept in order (s_0 of each episode, then each next observation).
        n = self.online.size
        if n:
            online_latents = algorithm.encode(fresh)
            is_initial = np.zeros(len(fresh), bool)
            is_initial[self._online_initial_positions()] = True
            next_latents = online_latents[self._tensor(~is_initial)][:n]
            previous = online_latents[self._tensor(np.flatnonzero(~is_initial) - 1)][:n]
            self.online.state[:n] = self._policy_state(previous)
            self.online.next_state[:n] = self._policy_state(next_latents)
            self.online.next_achieved[:n] = next_latents
            self.online_initial = list(online_latents[self._tensor(self._online_initial_positions())])
        self.timings["representation_seconds"] += time.perf_counter() - started

    def _online_initial_positions(self) -> np.ndarray:
        positions, position = [], 0
        episode_lengths = np.bincount(self.online_episode[:self.online.size].cpu().numpy(),
                                      minlength=len(self.online_initial))
        for length in episode_lengths:
            positions.append(position)
            position += int(length) + 1
        return np.asarray(positions[:len(self.online_initial)], dtype=np.int64)

    # -- artifacts: reconstructions and imagined goals -------------------------------------------------------
    def _save_grids(self, phase: str) -> None:
        """Reconstructions of dataset images, and goals imagined in the run's evaluation scene (Figures 42 and 47)."""
        if self.observation_key != "image":
            return  # the state variant has no pictures to show
        from PIL import Image

        algorithm = self.algorithm
        rows = torch.linspace(0, len(self.images) - 1, GRID_COLUMNS).long().to(self.device)
        originals = self.images[rows]
        initial = self._initial_images(rows)
        reconstructions = to_uint8_images(algorithm.decode(algorithm.encode(originals, initial)))
        grids = {f"reconstructions_{phase}.png": [originals, reconstructions]}
        if self.config.goal_proposal != "none":
            grids[f"samples_{phase}.png"] = self._imagined_goals()
        for name, grid_rows in grids.items():
            grid = torch.cat([torch.cat(list(row), dim=1) for row in grid_rows], dim=0).cpu().numpy()
            buffer = io.BytesIO()
            Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(buffer, "PNG")
            self.storage.write_bytes(artifact_path(self.spec.run_id, name), buffer.getvalue())
            if name not in self.artifacts:
                self.artifacts.append(name)

    def _imagined_goals(self) -> list[torch.Tensor]:
        """Columns: 8 starts s_0 in the evaluation environment (with --online-env held-out: the run's
        held-out scene); rows: s_0, then goals imagined from it."""
        algorithm = self.algorithm
        starts = []
        for column in range(GRID_COLUMNS):
            observation, _ = self.eval_env.reset(seed=evaluation_seed(1000 + column), options={"pose_task": False})
            starts.append(observation[self.observation_key])
        starts = self._tensor(np.asarray(starts))
        z0 = algorithm.encode(starts, starts if algorithm.representation.conditional else None)
        shown = torch.Generator().manual_seed(self.spec.seed)  # a figure draws nothing from the training streams
        return [starts] + [to_uint8_images(algorithm.decode(algorithm.propose(z0, shown))) for _ in range(3)]

    # -- checkpoints and results -------------------------------------------------------------------------------
    def checkpoint_extras(self) -> dict[str, Any]:
        n = self.online.size if self.online is not None else 0
        # CPU tensors: a checkpoint any device reads.
        return {"online_episode": self.online_episode[:n].cpu(), "online_initial": _moved(self.online_initial, "cpu"),
                "online_bank": _moved(self.online_bank, "cpu"), "online_images": list(self.online_images),
                "artifacts": list(self.artifacts), "calibration": self.calibration,
                "reused_models": dict(self.models.reused)}

    def models_restored(self) -> None:
        """The restored representation re-encodes D and rebuilds the buffers the online rows go into."""
        self._prepare_latents()

    def restore_extras(self, state: dict[str, Any]) -> None:
        if self.online is not None and state["online_buffer"] is not None:
            n = self.online.size  # the rows of completed steps (see Run.load_checkpoint)
            self.online_episode[:n] = state["online_episode"][:n]
            self.online_initial = _moved(state["online_initial"], self.device)
            self.online_bank = _moved(state["online_bank"], self.device)
            self.online_images = state["online_images"][:n]
        self.artifacts = state["artifacts"]
        self.calibration = state.get("calibration")
        self.models.reused.update(state.get("reused_models", {}))

    def extra_results(self) -> dict[str, Any]:
        overrides = self.spec.env_overrides or {}
        return {"artifacts": [artifact_path(self.spec.run_id, name) for name in self.artifacts],
                "task": overrides.get("task"), "online_env": overrides,
                "reward_epsilon": self.algorithm.reward_epsilon if self.config.reward == "sparse" else None,
                "reward_calibration": self.calibration, "reused_models": self.models.reused}
