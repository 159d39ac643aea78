"""The rest of a run: what an online step and an evaluation episode cost next to their parts; prints JSON.

    .venv/bin/python benchmarks/online_loop.py [--algorithm iql] [--env Pendulum-v1] [--steps 2000]

A real ``bench evaluate`` run (offline 0, online N steps, one evaluation at the end) in a throwaway
registry on random episodes of a gymnasium environment, at CORL's sizes (2x256), against:
  env_step       the bare environment loop, random actions (steps/s)
  act            the policy's forward pass on one observation (calls/s)
  update         sample + one update (updates/s), the same algorithm and sizes
  online_step    the run's online phase: act + environment step + storing + one update (steps/s, from
                 the run's own timings), and what of it is not env, act or update ("harness")
  evaluation     the run's evaluation seconds per environment step, against a bare step
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput  # noqa: E402

from bench.algorithms import build_algorithm, make_config  # noqa: E402
from bench.datasets import Registry  # noqa: E402
from bench.evaluation.executors import execute_sweep  # noqa: E402
from bench.evaluation.store import RunStore  # noqa: E402
from bench.evaluation.sweeps import Budget, plan_sweep  # noqa: E402
from bench.platform.environments import env_reference  # noqa: E402
from bench.platform.settings import Settings  # noqa: E402
from bench.testing.data import gym_random_rollouts  # noqa: E402


def rate(step, n: int) -> float:
    for _ in range(max(5, n // 20)):
        step()
    started = time.perf_counter()
    for _ in range(n):
        step()
    return n / (time.perf_counter() - started)


def bare_env_rate(env_id: str, n: int) -> float:
    env = gym.make(env_id)
    env.reset(seed=0)
    env.action_space.seed(0)

    def step() -> None:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()

    return rate(step, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithm", default="iql")
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    hidden = throughput.CORL_SIZES.get(args.algorithm, (256, 256))
    overrides = {"hidden_dims": "x".join(map(str, hidden)), "compile": "off"}
    with tempfile.TemporaryDirectory() as home:
        settings = Settings.load(home=home)
        registry = Registry.open(settings)
        data = gym_random_rollouts(args.env, episodes=20, seed=0)
        dataset = registry.publish(data, "bench/online-loop", env=env_reference(args.env)).id
        store = RunStore(registry.engine)
        budget = Budget(offline_steps=0, online_steps=args.steps, eval_every=args.steps, eval_episodes=5)
        [spec] = plan_sweep(registry, store, args.algorithm, dataset, [0], budget, overrides, device="cpu")
        [outcome] = execute_sweep([spec], settings, store)
        registry.close()
    if outcome.status != "completed":
        raise SystemExit(f"the run {outcome.status}: {outcome.error}")
    timings = outcome.results["online"]["final"]
    env = gym.make(args.env)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    algorithm = build_algorithm(args.algorithm, make_config(args.algorithm, None, {"hidden_dims": hidden}),
                                obs_dim, act_dim)
    replay = throughput.replay_of_random_data(np.random.default_rng(0))
    observation = torch.randn(1, obs_dim)
    bare = bare_env_rate(args.env, 5000)
    act = rate(lambda: algorithm.act(observation, deterministic=False), 2000)
    update_algorithm = build_algorithm(args.algorithm, make_config(args.algorithm, None, {"hidden_dims": hidden}),
                                       throughput.OBS, throughput.ACT)
    update = rate(lambda: update_algorithm.update(replay.sample(throughput.BATCH)), 300)
    online = outcome.timings["online_env_steps_per_second"]
    step_ms = 1000 / online
    parts_ms = {"env": 1000 / bare, "act": 1000 / act, "update": 1000 / update}
    # Two evaluations: the untrained policy's (offline, step 0) and the final one.
    evaluation_steps = 2 * timings["episodes"] * timings["episode_length"]
    report = {"algorithm": args.algorithm, "env": args.env, "hidden": list(hidden), "online_steps": args.steps,
              "bare_env_steps_per_second": bare, "act_per_second": act, "updates_per_second": update,
              "online_steps_per_second": online,
              "online_step_ms": {"total": step_ms, **parts_ms,
                                 "harness": step_ms - sum(parts_ms.values())},
              "update_share_of_online_step": parts_ms["update"] / step_ms,
              "evaluation_ms_per_env_step": 1000 * outcome.timings["eval_seconds"] / evaluation_steps,
              "bare_env_ms_per_step": parts_ms["env"]}
    print(json.dumps(throughput._rounded(report), indent=2))


if __name__ == "__main__":
    main()
