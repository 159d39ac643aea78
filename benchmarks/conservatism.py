"""CQL's conservatism, measured: the values each trained critic gives the data's actions, the policy's and random ones. JSON.

    .venv/bin/python benchmarks/conservatism.py [--datasets A,B] [--seeds 3] [--offline-steps 20000]
        [--eval-episodes 10] [--samples 4096] [--home benchmarks/.scores-home]

Dissertation ch. 8 (and the CQL paper) say that CQL learns a lower bound: its Q-function pushes down
the values of actions outside the data, where an unconstrained critic would overestimate them. This
reads the runs that benchmarks/discrimination.py trained (same budget, same bench home; it trains
nothing) and, for IQL, AWAC and CQL on each dataset, rebuilds every completed run from its spec,
loads its final checkpoint and evaluates its critic (the minimum over the twin Q) on ``--samples``
transitions of the offline buffer (states normalized as in training, actions in [-1, 1], rewards as
transformed for training):
  q_data    Q(s, a) for the dataset's actions
  q_policy  Q(s, pi(s)) for the trained policy's deterministic action
  q_random  Q(s, u) for actions drawn uniformly in [-1, 1]^d: out-of-distribution actions
  ood_gap   q_data - q_random, in the units of the rewards as trained on
  gap_in_sd ood_gap over the standard deviation of Q(s, a) across the batch's data: free of the reward
            scale, which differs between methods (IQL's and CQL's maze preset trains on reward - 1)
A conservative critic has a large positive gap (random actions valued well below the data's); the
claim holds where CQL's gap_in_sd exceeds IQL's and AWAC's with non-overlapping intervals over seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scores  # noqa: E402
from discrimination import overrides_for  # noqa: E402

from bench.evaluation.states import StateRun  # noqa: E402
from bench.evaluation.sweeps import Budget, spec_of  # noqa: E402
from bench.leaderboards.statistics import bootstrap_mean  # noqa: E402

CRITICS = ("iql", "awac", "cql")
DEFAULT_DATASETS = "pointmaze/medium-single/play,metaworld/push/expert-misaimed"


@torch.no_grad()
def critic_values(run: StateRun, samples: int, seed: int) -> dict[str, float]:
    """Mean twin-minimum Q of the data's, the policy's and uniformly random actions on a batch of the offline buffer."""
    torch.manual_seed(seed)
    batch = run.replay.sample(samples)
    algorithm = run.algorithm.eval()

    def q(actions: torch.Tensor) -> torch.Tensor:
        return algorithm.critic(batch.obs, actions).min(0).values

    uniform = torch.rand(batch.action.shape, device=batch.action.device) * 2 - 1
    q_data = q(batch.action)
    values = {"q_data": float(q_data.mean()), "q_policy": float(q(algorithm.act(batch.obs, deterministic=True)).mean()),
              "q_random": float(q(uniform).mean())}
    values["ood_gap"] = values["q_data"] - values["q_random"]
    values["gap_in_sd"] = values["ood_gap"] / max(float(q_data.std()), 1e-8)
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=DEFAULT_DATASETS)
    parser.add_argument("--home", default=str(scores.ROOT / "benchmarks" / ".scores-home"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--offline-steps", type=int, default=20_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--samples", type=int, default=4096)
    args = parser.parse_args()
    settings, registry, store = scores.open_home(Path(args.home))
    budget = Budget(args.offline_steps, 0, args.offline_steps, args.eval_episodes, log_every=1000)
    out = {}
    for dataset in args.datasets.split(","):
        dataset_id = registry.show(dataset).id
        rows = {}
        for algorithm in CRITICS:
            done = scores.completed_runs(store, algorithm, dataset_id, overrides_for(algorithm, dataset), budget,
                                         args.seeds)
            per_seed = []
            for seed, run_id in sorted(done.items()):
                run = StateRun(spec_of(store, run_id), settings, recorder=None)
                if not run.load_checkpoint():
                    continue
                per_seed.append(critic_values(run, args.samples, seed))
                run.env.close()
                run.eval_env.close()
            rows[algorithm] = {key: {"mean": stats["mean"], "ci95": stats["ci95"], "seeds": stats["n"]}
                               for key in ("q_data", "q_policy", "q_random", "ood_gap", "gap_in_sd")
                               if (stats := bootstrap_mean([values[key] for values in per_seed])) is not None}
        # Intervals need two seeds or more; with fewer, the comparison is not made.
        gaps = {name: row["gap_in_sd"]["ci95"] for name, row in rows.items() if row.get("gap_in_sd")}
        out[dataset] = {"critics": rows, "cql_most_conservative": (
            None if len(gaps) < len(CRITICS) or None in gaps.values()
            else all(gaps["cql"][0] > gaps[name][1] for name in CRITICS if name != "cql"))}
    registry.close()
    print(json.dumps({
        "command": f"python benchmarks/conservatism.py --datasets {args.datasets} --seeds {args.seeds} "
                   f"--offline-steps {args.offline_steps} --eval-episodes {args.eval_episodes} --samples {args.samples}",
        "datasets": out,
    }, indent=2))


if __name__ == "__main__":
    main()
