"""Recipes: environment + collecting policy + seed + size -> a dataset, deterministically.

Episode i of a build with seed s resets its environment with a seed drawn from
``SeedSequence([s, i])`` and drives its policy with a generator from ``SeedSequence([s, i, 1])``,
so an episode's content depends only on (recipe, s, i): episodes can be collected by any number
of worker processes in any order and the dataset (and its ``content_sha256``) stays the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import gymnasium as gym
import numpy as np

from bench.datasets.trajectories import Trajectories
from bench.platform.environments import env_reference, make_env


class Policy(Protocol):
    def __call__(self, observation: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


@dataclass(frozen=True)
class EnvironmentSpec:
    """A task in the environment catalogue: its name, how to build it, and how to score it."""

    name: str  # e.g. "metaworld/drawer-open"
    gym_id: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    family: str = ""
    # Distributions whose versions the environment reference records (besides gymnasium's).
    packages: tuple[str, ...] = ()
    # Reference scores published elsewhere: {source: {"random": x, "expert": y, "note": ...}}.
    published_references: dict[str, dict[str, Any]] = field(default_factory=dict)
    # A module whose import registers the environment id (e.g. "ogbench.manipspace").
    module: str | None = None

    def make(self, **overrides: Any) -> gym.Env:
        return make_env(self.reference(), **overrides)

    def reference(self) -> dict[str, Any]:
        return {**env_reference(self.gym_id, self.kwargs, self.packages, self.module), "name": self.name}


def controller_policies(controller: Callable[[], Callable[[Any], np.ndarray]], action_dim: int, noise: float,
                        noisy_kind: str) -> Callable[[str, gym.Env], Policy]:
    """``make_policy`` for data made by a hand-written controller: kind "random" acts uniformly in [-1, 1],
    ``noisy_kind`` adds N(0, noise^2) to the controller's actions, any other kind (a reference policy) is
    the controller itself; actions clipped to [-1, 1]."""

    def make_policy(kind: str, env: gym.Env) -> Policy:
        if kind == "random":
            return lambda observation, rng: rng.uniform(-1.0, 1.0, action_dim)
        control = controller()
        spread = noise if kind == noisy_kind else 0.0

        def policy(observation, rng):
            action = np.asarray(control(observation), np.float64)
            if spread:
                action = action + rng.normal(0.0, spread, action_dim)
            return np.clip(action, -1.0, 1.0)

        return policy

    return make_policy


@dataclass(frozen=True)
class Recipe:
    """How to regenerate one dataset. ``policies(kind)`` builds the policy for an episode kind."""

    name: str  # the dataset's namespace/name, e.g. "metaworld/drawer-open/expert"
    env: EnvironmentSpec
    policy: str  # one line: who acts and with what noise
    default_episodes: int
    make_policy: Callable[[str, gym.Env], Policy]
    # Which kind of policy collects episode i of n (e.g. "expert" for all, or a mixture).
    episode_kind: Callable[[int, int], str]
    description: str = ""
    max_episode_steps: int | None = None
    # Calibration policies for the environment's reference scores; none where bench has none.
    reference_policies: dict[str, str] = field(default_factory=dict)
    # For recipes whose collection is not "one policy acts every step" (e.g. OGBench's oracles,
    # which switch targets mid-episode): a data-collection environment and an episode loop.
    # When an episode counts as a success: "any" step (Meta-World, OGBench) or the "final" one (Fetch).
    success_rule: str = "any"
    make_collection_env: Callable[[], gym.Env] | None = None
    collect_episode: Callable[[gym.Env, str, int, np.random.Generator], "EpisodeRecord"] | None = None
    # Record the simulator's state with each observation (``infos/sim_state``, from the environment's
    # ``sim_state()``), so that training episodes can restart from demonstration states (ch. 4.4.4).
    record_sim_state: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "env": self.env.name, "gym_id": self.env.gym_id, "env_kwargs": self.env.kwargs,
                "policy": self.policy, "default_episodes": self.default_episodes, "description": self.description}


@dataclass
class EpisodeRecord:
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    success: np.ndarray  # per observation: the environment's success flag at reset, then after each step
    attrs: dict[str, Any]
    states: np.ndarray | None = None  # per observation: the simulator's state, when the recipe records it


def episode_seeds(seed: int, index: int) -> tuple[int, np.random.Generator]:
    reset_seed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
    return reset_seed, np.random.default_rng(np.random.SeedSequence([seed, index, 1]))


def rollout(env: gym.Env, policy: Policy, reset_seed: int, rng: np.random.Generator,
            max_steps: int | None = None, success_rule: str = "any", options: dict[str, Any] | None = None,
            on_step: Callable[[int], None] | None = None,
            state_of: Callable[[], np.ndarray] | None = None) -> EpisodeRecord:
    """One episode of ``policy``; ``on_step(t)`` is called after the reset (t=0) and after each step,
    and ``state_of()``, when given, records the simulator's state with every observation."""
    states: list[np.ndarray] = []
    record = on_step or (lambda step: None)

    def on_step(step: int) -> None:
        if state_of is not None:
            states.append(np.asarray(state_of(), np.float64).copy())
        record(step)

    observation, info = env.reset(seed=reset_seed, options=options)
    on_step(0)
    # Success per observation (T+1, Minari's convention for infos): the reset's, then each step's.
    observations, actions, rewards, terms, truncs = [observation], [], [], [], []
    success = [_success(info)]
    while True:
        action = np.asarray(policy(observation, rng), dtype=np.float32)
        observation, reward, terminated, truncated, info = env.step(action)
        if max_steps is not None and len(actions) + 1 >= max_steps:
            truncated = True
        observations.append(observation)
        actions.append(action)
        rewards.append(reward)
        terms.append(terminated)
        truncs.append(truncated and not terminated)
        success.append(_success(info))
        on_step(len(actions))
        if terminated or truncated:
            break
    attrs = {"seed": reset_seed, "success": bool(success[-1] if success_rule == "final" else np.any(success[1:]))}
    if "variation" in info or hasattr(env.unwrapped, "variation"):
        attrs["variation"] = int(getattr(env.unwrapped, "variation", info.get("variation", -1)))
    return EpisodeRecord(_stack(observations), np.asarray(actions), np.asarray(rewards, np.float32),
                         np.asarray(terms), np.asarray(truncs), np.asarray(success), attrs,
                         np.stack(states) if states else None)


def _stack(observations: list[Any]) -> Any:
    """Observations as float32 arrays, but images (uint8) as they are: frames, a quarter of the size."""
    if isinstance(observations[0], dict):
        return {key: _stack([o[key] for o in observations]) for key in observations[0]}
    dtype = np.uint8 if np.asarray(observations[0]).dtype == np.uint8 else np.float32
    return np.asarray(observations, dtype=dtype)


def _success(info: dict[str, Any]) -> bool:
    return bool(info.get("success", info.get("is_success", False)))


def _concatenate(parts: list[Any]) -> Any:
    if isinstance(parts[0], dict):
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    return np.concatenate(parts)


def to_trajectories(records: list[EpisodeRecord], env: gym.Env | None = None) -> Trajectories:
    attrs: dict[str, Any] = {}
    for key in records[0].attrs:
        values = [record.attrs.get(key) for record in records]
        attrs[key] = np.asarray(values, dtype=object if isinstance(values[0], str) else None)
    return Trajectories(
        observations=_concatenate([r.observations for r in records]),
        actions=np.concatenate([r.actions for r in records]).astype(np.float32),
        rewards=np.concatenate([r.rewards for r in records]),
        terminations=np.concatenate([r.terminations for r in records]),
        truncations=np.concatenate([r.truncations for r in records]),
        lengths=np.array([len(r.actions) for r in records]),
        infos={"success": np.concatenate([r.success for r in records]),
               **({"sim_state": np.concatenate([r.states for r in records])} if records[0].states is not None else {})},
        episode_attrs=attrs,
        observation_space=env.observation_space if env is not None else None,
        action_space=env.action_space if env is not None else None,
    )
