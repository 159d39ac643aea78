"""Do PTP's subgoal generators make states? The press of a button, in the data and in the generators' prior samples.

    python benchmarks/generator_fidelity.py --home DIR RUN_ID [--steps 4000] [--samples 1000] [--starts 5]

A tabletop PTP run on the privileged state (``--set representation=state``) whose task presses
the button. In the data, the button lights only with the gripper on it, and the gripper stays
there for several steps, so a window of dt steps that starts unlit and ends lit usually ends
with the gripper at the button: a subgoal a policy can follow (benchmarks/plan_probe.py shows
it does). This probe asks whether the generators of eq. 50 reproduce that:

  data      for each level's dt: the windows of the prior data that press the button, and the
            share of them ending with the gripper within 5 cm of it (the rate a faithful
            generator would show);
  run       the run's generators: from the first observations of ``--starts`` evaluation episodes,
            ``--samples`` chains of 4 subgoals with z ~ N(0, I) (how Algorithm 9 starts); the share
            of chains that light the button, and of those, the share whose first lit subgoal has
            the gripper at the button;
  fresh     the same for generators trained anew for ``--steps`` steps at several settings (KL
            weight, z size, width, chain links), in memory only.

Prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.algorithms.ptp import build_planner
from bench.algorithms.subgoals import rollout
from bench.evaluation.layouts import evaluation_seed
from bench.platform.envs.tabletop import TabletopEnv
from bench.platform.envs.tabletop_layout import BUTTON, BUTTON_XY, GRIP

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finished_runs import load_finished_run  # noqa: E402

AT_BUTTON = 0.05  # metres, as plan_probe's "plans with the gripper at the button"
SUBGOALS = 4  # a chain's length, the planner's K on the top level
FRESH_SETTINGS = [  # the KL weight of eq. 50, z's size, the MLP, pairs per training chain
    dict(generator_beta=1.0, subgoal_latent_dim=8, generator_hidden_dims=(256, 256), generator_links=2),
    dict(generator_beta=0.1, subgoal_latent_dim=8, generator_hidden_dims=(256, 256), generator_links=2),
    dict(generator_beta=1.0, subgoal_latent_dim=8, generator_hidden_dims=(256, 256), generator_links=1),
    dict(generator_beta=0.1, subgoal_latent_dim=8, generator_hidden_dims=(256, 256), generator_links=1),
    dict(generator_beta=1.0, subgoal_latent_dim=16, generator_hidden_dims=(512, 512), generator_links=1),
    dict(generator_beta=0.3, subgoal_latent_dim=8, generator_hidden_dims=(512, 512, 512), generator_links=1),
]


def lit_and_at_button(states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per state (..., D): the button lit, and the gripper within AT_BUTTON of the button (in the table's plane)."""
    lit = states[..., BUTTON] > 0.5
    near = np.linalg.norm(states[..., GRIP][..., :2] - states[..., BUTTON_XY], axis=-1) < AT_BUTTON
    return lit, near


def data_rates(states: np.ndarray, episode_end: np.ndarray, intervals: list[int]) -> dict[str, dict]:
    """Per dt: the windows (s_t, s_(t+dt)) of one episode that press the button, and the share ending at it."""
    lit, near = lit_and_at_button(states)
    rows = np.arange(len(states))
    result = {}
    for dt in sorted(set(intervals) | {max(1, i // 2) for i in intervals}):
        ends = np.minimum(rows + dt, episode_end)
        pressing = ~lit & lit[ends]
        result[f"dt {dt}"] = {"windows_that_press": int(pressing.sum()),
                              "ending_at_the_button": round(float(near[ends][pressing].mean()), 3)}
    return result


def prior_rates(run, planner, starts: torch.Tensor, samples: int, seed: int) -> dict[str, dict]:
    """Per level: chains of SUBGOALS generated with z ~ N(0, I) from each start; how many light the button,
    and of those, how many first light it with the gripper at it."""
    rng, result = torch.Generator().manual_seed(seed), {}
    for level, (generator, interval) in enumerate(zip(planner.generators, planner.intervals)):
        z = torch.randn(len(starts) * samples, SUBGOALS, generator.latent_dim, generator=rng)
        with torch.no_grad():
            chains = run._from_plan(rollout(generator, starts.repeat_interleave(samples, 0), z)).numpy()
        lit, near = lit_and_at_button(chains)
        lights = lit.any(1)
        first_lit_at_button = near[np.arange(len(chains)), lit.argmax(1)] & lights
        result[f"level {level} (dt {interval})"] = {
            "chains_that_light_it": round(float(lights.mean()), 3),
            "first_lit_subgoal_at_the_button": round(float(first_lit_at_button.sum() / max(lights.sum(), 1)), 3)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("run_id")
    parser.add_argument("--steps", type=int, default=4000, help="training steps of each fresh set of generators")
    parser.add_argument("--samples", type=int, default=1000, help="prior chains per start")
    parser.add_argument("--starts", type=int, default=5, help="evaluation episodes whose first observations start chains")
    args = parser.parse_args()
    run, spec = load_finished_run(args.home, args.run_id)
    if not spec.algorithm.startswith("ptp") or run.observation_key != "state":
        raise SystemExit(f"run {args.run_id} is not a PTP run on the tabletop's state (--set representation=state)")
    run._ensure_latents()
    env = TabletopEnv(**dict(spec.env_overrides))
    firsts = [env.reset(seed=evaluation_seed(i))[0]["state"] for i in range(args.starts)]
    env.close()
    starts = run._to_plan(torch.from_numpy(np.stack(firsts).astype(np.float32)))
    planner = run.algorithm.planner
    print(json.dumps({"data": data_rates(run.latents.numpy(), run.obs_episode_end.numpy(), planner.intervals)}))
    print(json.dumps({"run's generators": {"steps": planner.updates, "beta": planner.beta,
                                           **prior_rates(run, planner, starts, args.samples, spec.seed)}}))
    planned = run._to_plan(run.latents)
    for settings in FRESH_SETTINGS:
        torch.manual_seed(spec.seed)
        began = time.perf_counter()
        fresh = build_planner(dataclasses.replace(run.config, **settings), run.algorithm.latent_dim)
        stream = torch.Generator().manual_seed(spec.seed)
        for _ in range(args.steps):
            losses = fresh.update(planned, run.obs_episode_end, run.config.generator_batch_size, stream)
        print(json.dumps({"fresh generators": {**settings, "steps": args.steps,
                                               "seconds": round(time.perf_counter() - began),
                                               **{k: round(float(v), 3) for k, v in losses.items()},
                                               **prior_rates(run, fresh, starts, args.samples, spec.seed)}}),
              flush=True)


if __name__ == "__main__":
    main()
