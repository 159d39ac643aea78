"""DDPG + HER and demonstrations (dissertation ch. 4): each loss term against hand-computed values, the replay's
demonstration rows, exploration, the configs, and runs through the CLI on Fetch demonstrations."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from bench.algorithms import build_algorithm, make_config
from bench.algorithms.base import Batch
from bench.algorithms.replay import Replay, TransitionBuffer
from bench.errors import InvalidInput
from conftest import interrupted_evaluation, make_settings, run_bench, settings_env


class LinearQ(nn.Module):
    """Q(s, a) = w . a, shape (1, B): a critic whose preferences are known."""

    def __init__(self, weights: list[float]):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(weights))

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return (action * self.w).sum(-1)[None]


class CopyPolicy(nn.Module):
    """pi(s) = scale * s[:, :2]: a policy whose actions are the observation's first two numbers."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.scale * obs[:, :2]


def known_ddpg(name: str, **overrides) -> torch.nn.Module:
    algorithm = build_algorithm(name, make_config(name, None, {"hidden_dims": (8,), **overrides}), 3, 2)
    algorithm.critic, algorithm.target_critic = LinearQ([1.0, 0.0]), LinearQ([1.0, 0.0])
    algorithm.policy, algorithm.target_policy = CopyPolicy(), CopyPolicy()
    return algorithm


def batch() -> Batch:
    # Rows 0-1 are demonstrations, 2-3 the agent's own. pi(s) = s[:, :2]; Q = a_x.
    obs = torch.tensor([[0.2, 0.0, 9.0], [0.3, 0.4, 9.0], [0.1, 0.1, 9.0], [-0.2, 0.5, 9.0]])
    action = torch.tensor([[0.5, 0.1], [-0.5, 0.0], [0.0, 0.0], [0.9, 0.9]])
    return Batch(obs, action, reward=torch.tensor([-1.0, 0.0, -1.0, -1.0]), next_obs=obs.flip(0),
                 done=torch.tensor([0.0, 1.0, 0.0, 0.0]), demo=torch.tensor([1.0, 1.0, 0.0, 0.0]))


def test_the_critic_regresses_on_clipped_td_targets():
    algorithm = known_ddpg("ddpg-her")
    b = batch()
    _, metrics = algorithm.losses(b)
    # y = r + 0.98 (1 - done) Q'(s', pi'(s')), with Q'(s', pi'(s')) = s'_x; clipped to [-1 / 0.02, 0].
    next_x = b.next_obs[:, 0]
    target = (b.reward + 0.98 * (1 - b.done) * next_x).clamp(-50.0, 0.0)
    q = b.action[:, 0]
    assert torch.isclose(metrics["critic_loss"], (q - target).pow(2).mean())
    assert float(target[1]) == 0.0  # a terminal row's target is its reward


def test_the_bc_loss_counts_demonstration_rows_only_and_the_q_filter_keeps_those_the_critic_prefers():
    b = batch()
    # Row 0: demo a_x 0.5 > pi_x 0.2, kept; row 1: demo a_x -0.5 < pi_x 0.3, filtered out.
    row0 = (0.2 - 0.5) ** 2 + (0.0 - 0.1) ** 2
    row1 = (0.3 + 0.5) ** 2 + (0.4 - 0.0) ** 2
    unfiltered = known_ddpg("ddpg-demos", q_filter=False)
    _, metrics = unfiltered.losses(b)
    assert metrics["bc_loss"].item() == pytest.approx(row0 + row1)  # eq. 13: a sum over the N_D demo rows
    filtered = known_ddpg("ddpg-demos")
    _, metrics = filtered.losses(b)
    assert metrics["bc_loss"].item() == pytest.approx(row0)  # eq. 15
    assert metrics["q_filter_kept"].item() == pytest.approx(0.5)


def test_the_actor_follows_lambda1_grad_j_minus_lambda2_grad_bc():
    b = batch()
    algorithm = known_ddpg("ddpg-demos", action_l2=0.5, rl_weight=1e-3, demo_batch_size=2)
    loss, metrics = algorithm.losses(b)
    pi = b.obs[:, :2]
    j = pi[:, 0].mean() - 0.5 * pi.pow(2).mean()
    bc = (0.2 - 0.5) ** 2 + (0.0 - 0.1) ** 2
    expected = -1e-3 * j + (1.0 / 2) * bc  # lambda2 = 1 / N_D
    assert metrics["policy_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.item() == pytest.approx(metrics["critic_loss"].item() + expected.item(), rel=1e-5)
    # The actor's term moves the policy only: the critic's gradient is the critic loss's alone.
    loss.backward()
    q = b.action[:, 0]
    target = (b.reward + 0.98 * (1 - b.done) * b.next_obs[:, 0]).clamp(-50.0, 0.0)
    expected_grad = (2 * (q - target)[:, None] * b.action).mean(0)
    assert torch.allclose(algorithm.critic.w.grad, expected_grad, atol=1e-6)
    assert algorithm.policy.scale.grad is not None and algorithm.policy.scale.grad != 0


def test_bc_her_clones_the_actor_offline_then_practises_with_ddpg_and_her_only():
    b = batch()
    algorithm = known_ddpg("bc-her")
    assert type(algorithm).learns_offline and not make_config("bc-her").demonstrations
    loss, metrics = algorithm.losses(b)
    expected = (b.obs[:, :2] - b.action).pow(2).sum(-1).mean()  # every row: the offline buffer is the demonstrations
    assert set(metrics) == {"bc_loss"} and loss.item() == pytest.approx(expected.item())
    algorithm.policy.scale.data.fill_(2.0)  # "pretrained"
    algorithm.begin_online()
    assert algorithm.target_policy.scale.item() == 2.0  # the targets start from the cloned actor
    _, metrics = algorithm.losses(b)
    assert "critic_loss" in metrics and "bc_loss" not in metrics  # no BC term online (Fig. 15's BC+HER)
    resumed = known_ddpg("bc-her")
    resumed.load_checkpoint_state(algorithm.checkpoint_state())
    assert not resumed.pretraining  # a checkpoint taken online resumes online
    # A checkpoint written when the flag was a module buffer still says so.
    old = algorithm.checkpoint_state()
    old.pop("pretraining")
    old["modules"] = {**old["modules"], "pretraining": torch.tensor(False)}
    again = known_ddpg("bc-her")
    again.load_checkpoint_state(old)
    assert not again.pretraining


def test_exploration_is_uniform_noise_or_a_random_action():
    torch.manual_seed(0)
    algorithm = known_ddpg("ddpg-her", random_action_probability=0.0)
    obs = torch.tensor([[0.5, -0.5, 0.0]]).repeat(2000, 1)
    assert torch.equal(algorithm.act(obs, deterministic=True), obs[:, :2])
    noisy = algorithm.act(obs, deterministic=False) - obs[:, :2]
    assert noisy.abs().max() <= 0.1 + 1e-6 and noisy.abs().max() > 0.09  # +-10% of the range [-1, 1] / 2
    algorithm.config.random_action_probability = 1.0
    random = algorithm.act(obs, deterministic=False)
    assert random.min() < -0.9 and random.max() > 0.9  # uniform over the whole range


def test_the_replay_marks_the_datasets_rows_as_demonstrations():
    offline = TransitionBuffer.from_arrays(*(torch.zeros(10, 2).numpy(),) * 2, torch.zeros(10, 1).numpy(),
                                           torch.zeros(10).numpy(), torch.zeros(10).numpy(), torch.tensor([10]).numpy())
    online = TransitionBuffer(10, 2, 1)
    replay = Replay(offline, online, online_fraction=0.75)
    assert torch.equal(replay.sample(8).demo, torch.ones(8))  # nothing of its own yet
    online.add([1.0, 1.0], [0.0], 0.0, [1.0, 1.0], False)
    assert torch.equal(replay.sample(8).demo, torch.tensor([1.0, 1.0, 0, 0, 0, 0, 0, 0]))


def test_configs_and_their_refusals():
    her, demos = make_config("ddpg-her"), make_config("ddpg-demos")
    assert her.replay_batch() == (256, 1.0)  # the agent's own replay only
    assert demos.replay_batch() == (288, 256 / 288)  # N rows of R and N_D more of R_D (ch. 4.4.1)
    assert (her.discount, her.actor_learning_rate, demos.rl_weight, demos.bc_loss, demos.q_filter) == (
        0.98, 1e-3, 1e-3, True, True)
    assert (her.relabel_keep, her.relabel_final) == (0.5, 0.5)  # each episode twice: its goal, its final one
    no_her = make_config("ddpg-demos", None, {"her": "false"})
    assert (no_her.relabel_keep, no_her.relabel_final) == (1.0, 0.0)
    paper = make_config("ddpg-demos-dissertation")
    assert paper.hidden_dims == (256, 256, 256, 256) and paper.replay_batch()[0] == 1024 + 128
    for name, overrides, message in [("ddpg-her", {"bc_loss": "true"}, "demonstrations=true"),
                                     ("ddpg-demos", {"online_fraction": "0.5"}, "not online_fraction"),
                                     ("ddpg-demos", {"bc_loss": "false"}, "q_filter filters"),
                                     ("ddpg-demos", {"demo_batch_size": "0"}, "demo_batch_size")]:
        with pytest.raises(InvalidInput, match=message):
            make_config(name, None, overrides)


@pytest.fixture
def fetch_push(request, tmp_path):
    settings = make_settings(request, tmp_path, "sqlite-local")
    env = settings_env(settings)
    run_bench(env, "datasets", "build", "fetch/push/demos", "--episodes", "4", "--reference-episodes", "2",
              "--workers", "1")
    return settings, env


SHORT = ["--online-steps", "60", "--eval-every", "30", "--eval-episodes", "1", "--log-every", "10",
         "--set", "hidden_dims=32x32", "--set", "batch_size=32", "--set", "demo_batch_size=8"]


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["ddpg-her", "ddpg-demos"])
def test_ddpg_runs_online_on_fetch_demonstrations_without_an_offline_phase(fetch_push, algorithm):
    _, env = fetch_push
    runs = [json.loads(run_bench(env, "evaluate", algorithm, "fetch/push/demos", *SHORT, "--json").stdout)["runs"][0]
            for _ in range(2)]
    assert [run["status"] for run in runs] == ["completed", "completed"], runs[0]["error"]
    shown = json.loads(run_bench(env, "runs", "show", runs[0]["run_id"], "--json").stdout)
    assert shown["plan"]["offline_steps"] == 0  # the demonstrations are replayed online (ch. 4.4), not pretrained on
    evaluations = [(c["phase"], c["step"]) for c in shown["curves"] if c["kind"] == "eval"]
    assert evaluations == [("offline", 0), ("online", 30), ("online", 60)]
    trained = [c for c in shown["curves"] if c["kind"] == "train"]
    assert {c["phase"] for c in trained} == {"online"}
    metrics = set(trained[0]["values"]) if isinstance(trained[0].get("values"), dict) else set(trained[0])
    assert ("bc_loss" in metrics and "q_filter_kept" in metrics) == (algorithm == "ddpg-demos")
    assert 0.0 <= runs[0]["online"]["success_rate"] <= 1.0
    # Determinism: the same seed gives the same run.
    again = json.loads(run_bench(env, "runs", "show", runs[1]["run_id"], "--json").stdout)
    assert shown["results"]["online"] == again["results"]["online"]
    assert [c for c in shown["curves"] if c["kind"] == "train"] == [c for c in again["curves"] if c["kind"] == "train"]


@pytest.mark.slow
def test_bc_her_pretrains_offline_then_practises(fetch_push):
    _, env = fetch_push
    run = json.loads(run_bench(env, "evaluate", "bc-her", "fetch/push/demos", "--offline-steps", "40", *SHORT,
                               "--json").stdout)["runs"][0]
    assert run["status"] == "completed", run["error"]
    shown = json.loads(run_bench(env, "runs", "show", run["run_id"], "--json").stdout)
    assert shown["plan"]["offline_steps"] == 40
    trained = {c["phase"]: c for c in shown["curves"] if c["kind"] == "train"}
    assert "bc_loss" in trained["offline"] and "critic_loss" not in trained["offline"]
    assert "critic_loss" in trained["online"] and "bc_loss" not in trained["online"]


@pytest.mark.slow
def test_ddpg_interrupted_mid_practice_resumes_from_its_checkpoint(fetch_push):
    """SIGINT after the first online evaluation: the run keeps its checkpoint (networks, targets, both
    buffers' state, random streams), and `runs resume` continues the online phase without losing or
    repeating an evaluation."""
    settings, env = fetch_push
    result = interrupted_evaluation(settings, env, ["ddpg-demos", "fetch/push/demos", "--online-steps", "3000",
                                                    "--eval-every", "100", "--eval-episodes", "1", "--set",
                                                    "hidden_dims=32x32", "--set", "batch_size=32", "--set",
                                                    "demo_batch_size=8"],
                                    lambda store, run_id: any(c["phase"] == "online"
                                                              for c in store.curves(run_id, kind="eval")))
    stdout, stderr = result.stdout, result.stderr
    assert result.returncode == 130, stderr
    run = json.loads(stdout)["runs"][0]
    assert run["status"] == "interrupted"
    shown = json.loads(run_bench(env, "runs", "show", run["run_id"], "--json").stdout)
    interrupted_at = shown["results"]["online"]["final"]["step"]
    assert 100 <= interrupted_at < 3000
    resumed = json.loads(run_bench(env, "runs", "resume", run["run_id"], "--json").stdout)
    assert resumed["runs"][0]["status"] == "completed"
    shown = json.loads(run_bench(env, "runs", "show", run["run_id"], "--json").stdout)
    steps = [c["step"] for c in shown["curves"] if c["kind"] == "eval" and c["phase"] == "online"]
    assert steps == list(range(100, 3001, 100))  # every evaluation once: none lost, none repeated
    assert [c["step"] for c in shown["curves"] if c["kind"] == "eval" and c["phase"] == "offline"] == [0]


def test_the_bc_loss_refuses_a_batch_that_does_not_mark_its_demonstrations():
    b = batch()
    b.demo = None
    with pytest.raises(ValueError, match="Batch.demo"):
        known_ddpg("ddpg-demos").losses(b)


class TwinLinearQ(nn.Module):
    """Q_j(s, a) = w_j . a for two members, shape (2, B)."""

    def __init__(self, first: list[float], second: list[float]):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([first, second]))

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ba,ja->jb", action, self.w)


def test_td3_regresses_both_critics_on_the_smaller_target_and_delays_its_actor():
    algorithm = build_algorithm("td3", make_config("td3", None, {"hidden_dims": (8,), "target_noise": 0.0}), 3, 2)
    algorithm.critic = TwinLinearQ([1.0, 0.0], [0.0, 1.0])
    algorithm.target_critic = TwinLinearQ([1.0, 0.0], [0.0, 1.0]).requires_grad_(False)
    algorithm.policy, algorithm.target_policy = CopyPolicy(), CopyPolicy()
    b = batch()
    _, metrics = algorithm.losses(b)
    # pi'(s') = s'[:, :2]; min_j Q'_j = min(s'_x, s'_y); y = r + 0.98 (1 - done) min.
    next_action = b.next_obs[:, :2]
    y = b.reward + 0.98 * (1.0 - b.done) * next_action.min(1).values
    q = torch.stack([b.action[:, 0], b.action[:, 1]])
    assert torch.allclose(metrics["critic_loss"], (q - y).pow(2).mean(1).sum())
    # Update 0 moves the actor and the targets; update 1 moves neither (policy_delay 2).
    algorithm.optimizer = torch.optim.SGD([*algorithm.critic.parameters(), *algorithm.policy.parameters()], lr=0.1)
    scale, target_w = algorithm.policy.scale.item(), algorithm.target_critic.w.clone()
    algorithm.update(b)
    assert algorithm.policy.scale.item() != scale and not torch.equal(algorithm.target_critic.w, target_w)
    scale, target_w = algorithm.policy.scale.item(), algorithm.target_critic.w.clone()
    metrics = algorithm.update(b)
    assert algorithm.policy.scale.item() == scale and torch.equal(algorithm.target_critic.w, target_w)
    assert "policy_loss" not in metrics and algorithm.updates == 2
    with pytest.raises(InvalidInput, match="policy_delay"):
        make_config("td3", None, {"policy_delay": 0})


def test_td3_actor_warmup_holds_the_actor_while_the_critic_and_its_target_learn():
    algorithm = build_algorithm("td3", make_config("td3", None, {"hidden_dims": (8,), "actor_warmup": 4}), 3, 2)
    algorithm.critic = TwinLinearQ([1.0, 0.0], [0.0, 1.0])
    algorithm.target_critic = TwinLinearQ([1.0, 0.0], [0.0, 1.0]).requires_grad_(False)
    algorithm.policy, algorithm.target_policy = CopyPolicy(), CopyPolicy()
    algorithm.optimizer = torch.optim.SGD([*algorithm.critic.parameters(), *algorithm.policy.parameters()], lr=0.1)
    b = batch()
    scale, target_scale, target_w = (algorithm.policy.scale.item(), algorithm.target_policy.scale.item(),
                                     algorithm.target_critic.w.clone())
    for _ in range(4):  # updates 0-3: the critic and (every 2nd update) its target move; the actor waits
        assert "policy_loss" not in algorithm.update(b)
    assert algorithm.policy.scale.item() == scale and algorithm.target_policy.scale.item() == target_scale
    assert not torch.equal(algorithm.target_critic.w, target_w)
    assert "policy_loss" in algorithm.update(b)  # update 4: the actor's first step
    assert algorithm.policy.scale.item() != scale
    with pytest.raises(InvalidInput, match="actor_warmup"):
        make_config("td3", None, {"actor_warmup": -1})
