"""The next lever for IQL's update, measured: V, pi, Q1 and Q2 packed into one 4-member batched MLP; prints JSON.

    .venv/bin/python benchmarks/packing_lever.py [--repeats 3]

IQL's four networks have the same hidden sizes, so each layer of all four can be one batched matmul
(baddbmm) instead of four matmuls (bench's twin critic already does this for Q1 and Q2). Inputs
differ (V and pi read s, the critics read (s, a)): every member reads (s, a) with the action zeroed
for V and pi, and every member writes |A| outputs of which V and the critics read the first. That
is exact, not an approximation: the zeroed inputs' weights and the unread outputs' weights get zero
gradient, and Adam moves a parameter with zero gradient (and zero moments) by exactly zero. This
script builds the packed update from a bench IQL's initial weights, checks that after a few steps
its weights equal bench's (so it measures the same learning), then times both compiled, in the same
process, interleaved, on the training loop (sample + update) at CORL's sizes.

It is a measurement, not bench's code: the packed layout changes checkpoint names and the
algorithm's modules, and the gain it shows (see docs/results.md) does not reach 2x CORL alone.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput  # noqa: E402

from bench.algorithms import Batch, build_algorithm, make_config  # noqa: E402

V, PI, Q1, Q2 = range(4)


class PackedIQL(torch.nn.Module):
    """IQL's update with V, pi, Q1, Q2 as one 4-member batched MLP (weights taken from a bench IQL)."""

    def __init__(self, iql):
        super().__init__()
        self.config, obs, act = iql.config, iql.obs_dim, iql.action_dim
        self.obs_dim, self.act_dim = obs, act
        value = [m for m in iql.value.net if isinstance(m, torch.nn.Linear)]
        policy = [m for m in iql.policy.net if isinstance(m, torch.nn.Linear)]
        critic = [*iql.critic.net.hidden, iql.critic.net.out]
        self.weights, self.biases = torch.nn.ParameterList(), torch.nn.ParameterList()
        for depth in range(len(critic)):
            d_in = critic[depth].weight.shape[1]
            d_out = act if depth == len(critic) - 1 else critic[depth].weight.shape[2]
            weight, bias = torch.zeros(4, d_in, d_out), torch.zeros(4, 1, d_out)
            for member, linear in ((V, value[depth]), (PI, policy[depth])):
                w = linear.weight.detach().T  # (in, out)
                weight[member, :w.shape[0], :w.shape[1]] = w
                bias[member, 0, :w.shape[1]] = linear.bias.detach()
            weight[Q1:, :, :critic[depth].weight.shape[2]] = critic[depth].weight.detach()
            bias[Q1:, :, :critic[depth].bias.shape[2]] = critic[depth].bias.detach()
            self.weights.append(torch.nn.Parameter(weight))
            self.biases.append(torch.nn.Parameter(bias))
        self.log_std = torch.nn.Parameter(iql.policy.log_std.detach().clone())
        self.target_critic = copy.deepcopy(iql.target_critic)  # its own copy, moved by Polyak below
        self.optimizer = torch.optim.Adam(self.parameters(), lr=self.config.learning_rate, fused=True)

    def forward_members(self, x: torch.Tensor, members=slice(None)) -> torch.Tensor:
        h = x
        last = len(self.weights) - 1
        for depth, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b[members], h, w[members])
            if depth < last:
                h = F.relu(h)
        return h

    def losses(self, batch: Batch) -> torch.Tensor:
        c = self.config
        with torch.no_grad():
            target_q = self.target_critic(batch.obs, batch.action).min(0).values
            next_input = torch.cat([batch.next_obs, torch.zeros_like(batch.action)], -1).unsqueeze(0)
            next_v = self.forward_members(next_input, slice(V, V + 1))[0, :, 0]
            td_target = batch.reward + c.discount * (1.0 - batch.done) * next_v
        state_only = torch.cat([batch.obs, torch.zeros_like(batch.action)], -1)
        with_action = torch.cat([batch.obs, batch.action], -1)
        out = self.forward_members(torch.stack([state_only, state_only, with_action, with_action]))
        value, q = out[V, :, 0], out[Q1:, :, 0]
        advantage = target_q - value
        value_loss = (torch.where(advantage < 0, 1 - c.expectile, c.expectile) * advantage.pow(2)).mean()
        critic_loss = (q - td_target).pow(2).mean(1).sum()
        weight = torch.exp(c.temperature * advantage.detach()).clamp(max=c.max_weight)
        mean, std = torch.tanh(out[PI]), self.log_std.clamp(-5.0, 2.0).exp()
        log_prob = (-0.5 * ((batch.action - mean) / std).pow(2) - std.log() - 0.5 * np.log(2 * np.pi)).sum(-1)
        return value_loss + critic_loss - (weight * log_prob).mean()

    def update(self, batch: Batch, compiled_losses=None) -> None:
        loss = (compiled_losses or self.losses)(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():  # Polyak on the critic members (the last layer's first output column)
            sources = []
            for depth, (w, b) in enumerate(zip(self.weights, self.biases)):
                columns = 1 if depth == len(self.weights) - 1 else w.shape[2]
                sources += [w[Q1:, :, :columns], b[Q1:, :, :columns]]
            targets = list(self.target_critic.parameters())
            torch._foreach_lerp_(targets, [s.contiguous() for s in sources], self.config.polyak)


def check_equal(packed: PackedIQL, iql, batches: list[Batch]) -> float:
    """Largest weight difference between the packed and bench's IQL after the same updates."""
    for batch in batches:
        packed.update(batch)
        iql.update(batch)
    worst = 0.0
    linears = {V: [m for m in iql.value.net if isinstance(m, torch.nn.Linear)],
               PI: [m for m in iql.policy.net if isinstance(m, torch.nn.Linear)]}
    critic = [*iql.critic.net.hidden, iql.critic.net.out]
    for depth, w in enumerate(packed.weights):
        for member, layers in linears.items():
            ref = layers[depth].weight.detach().T
            worst = max(worst, (w[member, :ref.shape[0], :ref.shape[1]].detach() - ref).abs().max().item())
        ref = critic[depth].weight.detach()
        worst = max(worst, (w[Q1:, :, :ref.shape[2]].detach() - ref).abs().max().item())
    return worst


def timed(step, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        step()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--updates", type=int, default=600)
    args = parser.parse_args()
    hidden = throughput.CORL_SIZES["iql"]
    replay = throughput.replay_of_random_data(np.random.default_rng(0))

    def fresh_pair():
        torch.manual_seed(0)
        iql = build_algorithm("iql", make_config("iql", None, {"hidden_dims": hidden}), throughput.OBS, throughput.ACT)
        return iql, PackedIQL(iql)

    iql, packed = fresh_pair()
    difference = check_equal(packed, iql, [replay.sample(throughput.BATCH) for _ in range(5)])

    iql, packed = fresh_pair()
    iql.compile_losses()
    compiled = torch.compile(packed.losses)
    loops = {"bench": lambda: iql.update(replay.sample(throughput.BATCH)),
             "packed": lambda: packed.update(replay.sample(throughput.BATCH), compiled)}
    for loop in loops.values():  # compile and warm up
        for _ in range(30):
            loop()
    rates: dict[str, list[float]] = {name: [] for name in loops}
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):
        for name, loop in loops.items():
            rates[name].append(timed(loop, args.updates))
    report = {"hidden": list(hidden), "torch_threads": torch.get_num_threads(),
              "max_weight_difference_after_5_updates": difference,
              "loop_updates_per_second": {name: statistics.median(r) for name, r in rates.items()},
              "load_average_before_after": [load_before, os.getloadavg()[0]]}
    report["packed_over_bench"] = report["loop_updates_per_second"]["packed"] / report["loop_updates_per_second"]["bench"]
    print(json.dumps(throughput._rounded(report), indent=2))


if __name__ == "__main__":
    main()
