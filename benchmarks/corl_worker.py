"""One timing of CORL's own training step, for benchmarks/throughput.py: prints one JSON line.

    python benchmarks/corl_worker.py CORL_DIR ALGORITHM UPDATES [--transitions 1000000]

CORL (github.com/tinkoff-ai/CORL) is not part of bench and none of its code is copied here: its
unmodified file algorithms/offline/{any_percent_bc,iql,awac,cql}.py is imported from CORL_DIR. The
modules it imports only for its ``train()`` entry point (d4rl, wandb, gym, pyrallis: datasets,
logging, environments, command-line configs) are stood in for by empty modules, because this times
only its replay buffer's ``sample`` and its trainer's update, built with the arguments and the
TrainConfig defaults its ``train()`` uses, on the CPU, at its default network sizes. The loop is its
own: ``sample(256)``, ``[b.to(device) for b in batch]``, ``trainer.train(batch)`` (AWAC: ``update``),
including the ``.item()`` calls its updates make for logging.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

OBS, ACT, BATCH = 17, 6, 256
FILES = {"bc": "any_percent_bc", "iql": "iql", "awac": "awac", "cql": "cql"}


def stand_ins() -> None:
    """Empty modules for what CORL imports for its train() alone."""
    gym = types.ModuleType("gym")
    gym.Env = gym.Wrapper = gym.ObservationWrapper = gym.RewardWrapper = gym.ActionWrapper = object
    pyrallis = types.ModuleType("pyrallis")
    pyrallis.wrap = lambda *args, **kwargs: (lambda function: function)
    pyrallis.dump = lambda *args, **kwargs: None
    for name, module in {"gym": gym, "pyrallis": pyrallis, "d4rl": types.ModuleType("d4rl"),
                         "wandb": types.ModuleType("wandb")}.items():
        sys.modules.setdefault(name, module)


def load(corl_dir: Path, algorithm: str):
    path = corl_dir / "algorithms" / "offline" / f"{FILES[algorithm]}.py"
    spec = importlib.util.spec_from_file_location(f"corl_{algorithm}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def trainer_of(corl, algorithm: str):
    """CORL's trainer for ``algorithm``, built as its train() builds it (TrainConfig defaults, CPU)."""
    config, device, max_action = corl.TrainConfig(), "cpu", 1.0
    if algorithm == "bc":
        actor = corl.Actor(OBS, ACT, max_action)
        return corl.BC(max_action=max_action, actor=actor, actor_optimizer=torch.optim.Adam(actor.parameters(), lr=3e-4),
                       discount=config.discount, device=device).train
    if algorithm == "iql":
        q, v = corl.TwinQ(OBS, ACT), corl.ValueFunction(OBS)
        actor = corl.GaussianPolicy(OBS, ACT, max_action, dropout=config.actor_dropout)
        return corl.ImplicitQLearning(
            max_action=max_action, actor=actor, actor_optimizer=torch.optim.Adam(actor.parameters(), lr=config.actor_lr),
            q_network=q, q_optimizer=torch.optim.Adam(q.parameters(), lr=config.qf_lr), v_network=v,
            v_optimizer=torch.optim.Adam(v.parameters(), lr=config.vf_lr), discount=config.discount, tau=config.tau,
            device=device, beta=config.beta, iql_tau=config.iql_tau, max_steps=config.max_timesteps).train
    if algorithm == "awac":
        sizes = {"state_dim": OBS, "action_dim": ACT, "hidden_dim": config.hidden_dim}
        actor, critic_1, critic_2 = corl.Actor(**sizes), corl.Critic(**sizes), corl.Critic(**sizes)
        adam = lambda module: torch.optim.Adam(module.parameters(), lr=config.learning_rate)  # noqa: E731
        return corl.AdvantageWeightedActorCritic(
            actor=actor, actor_optimizer=adam(actor), critic_1=critic_1, critic_1_optimizer=adam(critic_1),
            critic_2=critic_2, critic_2_optimizer=adam(critic_2), gamma=config.gamma, tau=config.tau,
            awac_lambda=config.awac_lambda).update
    critic_1 = corl.FullyConnectedQFunction(OBS, ACT, config.orthogonal_init, config.q_n_hidden_layers)
    critic_2 = corl.FullyConnectedQFunction(OBS, ACT, config.orthogonal_init)
    actor = corl.TanhGaussianPolicy(OBS, ACT, max_action, log_std_multiplier=config.policy_log_std_multiplier,
                                    orthogonal_init=config.orthogonal_init)
    return corl.ContinuousCQL(
        critic_1=critic_1, critic_2=critic_2, critic_1_optimizer=torch.optim.Adam(list(critic_1.parameters()), config.qf_lr),
        critic_2_optimizer=torch.optim.Adam(list(critic_2.parameters()), config.qf_lr), actor=actor,
        actor_optimizer=torch.optim.Adam(actor.parameters(), config.policy_lr), discount=config.discount,
        soft_target_update_rate=config.soft_target_update_rate, device=device, target_entropy=-float(ACT),
        alpha_multiplier=config.alpha_multiplier, use_automatic_entropy_tuning=config.use_automatic_entropy_tuning,
        backup_entropy=config.backup_entropy, policy_lr=config.policy_lr, qf_lr=config.qf_lr, bc_steps=config.bc_steps,
        target_update_period=config.target_update_period, cql_n_actions=config.cql_n_actions,
        cql_importance_sample=config.cql_importance_sample, cql_lagrange=config.cql_lagrange,
        cql_target_action_gap=config.cql_target_action_gap, cql_temp=config.cql_temp, cql_alpha=config.cql_alpha,
        cql_max_target_backup=config.cql_max_target_backup, cql_clip_diff_min=config.cql_clip_diff_min,
        cql_clip_diff_max=config.cql_clip_diff_max).train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corl_dir", type=Path)
    parser.add_argument("algorithm", choices=sorted(FILES))
    parser.add_argument("updates", type=int)
    parser.add_argument("--transitions", type=int, default=1_000_000)
    args = parser.parse_args()
    stand_ins()
    corl = load(args.corl_dir, args.algorithm)
    np.random.seed(0)
    torch.manual_seed(0)
    rng, n = np.random.default_rng(0), args.transitions
    terminals = np.zeros(n, np.float32)
    terminals[999::1000] = 1.0
    data = {"observations": rng.standard_normal((n, OBS), dtype=np.float32),
            "actions": rng.uniform(-1, 1, (n, ACT)).astype(np.float32),
            "rewards": rng.standard_normal(n).astype(np.float32),
            "next_observations": rng.standard_normal((n, OBS), dtype=np.float32), "terminals": terminals}
    buffer = corl.ReplayBuffer(OBS, ACT, n, "cpu")
    buffer.load_d4rl_dataset(data)
    step = trainer_of(corl, args.algorithm)

    def loop() -> None:
        batch = [b.to("cpu") for b in buffer.sample(BATCH)]
        step(batch)

    for _ in range(max(2, args.updates // 20)):
        loop()
    started = time.perf_counter()
    for _ in range(args.updates):
        loop()
    print(json.dumps({"full_loop": args.updates / (time.perf_counter() - started)}))


if __name__ == "__main__":
    main()
