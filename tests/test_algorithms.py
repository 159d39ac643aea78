"""Algorithm correctness, drawn from the dissertation: IQL's U-maze (ch. 8.4.1), CQL's conservatism, AWR actor updates.

Plus the shared layer: configs and their sources, replay mixing, goal relabeling, checkpoints.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.algorithms import Batch, build_algorithm, get_algorithm, list_algorithms, make_config
from bench.algorithms.config import describe_fields, resolve_config
from bench.algorithms.iql import IQLConfig, expectile_loss
from bench.algorithms.replay import RelabelShares, Replay, TransitionBuffer
from bench.errors import InvalidInput, NotFound

SMALL = {"hidden_dims": (64, 64)}


# -- registry and configs ---------------------------------------------------------------------------
def test_registered_algorithms_and_sources():
    names = [spec.name for spec in list_algorithms()]
    assert {"bc", "bc-10%", "awac", "iql", "cql", "cql-lagrange"} <= set(names)
    for spec in list_algorithms():
        for row in describe_fields(spec.config_class):
            assert row["source"], f"{spec.name}.{row['name']} has no source for its default"
    with pytest.raises(NotFound, match="unknown algorithm"):
        get_algorithm("dqn")


def test_config_layers_defaults_then_domain_preset_then_overrides():
    assert make_config("iql").expectile == 0.7
    maze = make_config("iql", "maze")
    assert (maze.expectile, maze.temperature, maze.reward_transform) == (0.9, 10.0, "minus_one")
    overridden = make_config("iql", "maze", {"expectile": "0.8", "hidden_dims": "128x128", "online_fraction": "0.5"})
    assert overridden.expectile == 0.8 and overridden.temperature == 10.0
    assert overridden.hidden_dims == (128, 128) and overridden.online_fraction == 0.5
    assert make_config("bc-10%").top_fraction == 0.1 and make_config("cql-lagrange").lagrange is True
    with pytest.raises(InvalidInput, match="unknown config field 'expectiles'"):
        make_config("iql", None, {"expectiles": "0.9"})
    with pytest.raises(InvalidInput, match="expected float"):
        make_config("iql", None, {"expectile": "high"})
    with pytest.raises(InvalidInput, match="sum to 1"):
        resolve_config(IQLConfig, None, {"relabel_keep": 0.9})


def test_a_preset_never_replaces_an_algorithms_own_defaults_with_another_domains():
    from bench.algorithms.config import domain_of, value_origins
    from bench.algorithms.ptp import StatePTPConfig

    # IQL's Kitchen/Adroit preset tunes IQL; ptp-state's own OGBench values survive it.
    assert make_config("iql", "kitchen-adroit").temperature == 0.5
    kept = resolve_config(StatePTPConfig, "kitchen-adroit")
    assert (kept.expectile, kept.temperature) == (0.9, 3.0) and kept.policy_dropout == 0.1
    # Meta-World, Fetch and the tabletop are not Kitchen/Adroit: the algorithm's defaults, sourced.
    for family in ("metaworld", "fetch", "tabletop"):
        assert make_config("iql", domain_of(family)) == make_config("iql")
    ogbench = make_config("ptp-state", domain_of("ogbench"))
    assert (ogbench.expectile, ogbench.temperature, ogbench.policy_dropout) == (0.9, 3.0, 0.0)
    origins = value_origins(IQLConfig, "maze", "iql", {})
    assert origins["expectile"].startswith("preset maze: IQL paper") and "IQL paper" in origins["learning_rate"]
    assert value_origins(StatePTPConfig, "goal-reaching", "ptp-state", {"planner": "cem"})["planner"] == \
        "ptp-state variant"


def test_expectile_loss_is_asymmetric():
    diff = torch.tensor([-1.0, 1.0])
    assert torch.allclose(expectile_loss(diff, 0.9), torch.tensor([0.1, 0.9]))
    assert torch.allclose(expectile_loss(diff, 0.5), torch.tensor([0.5, 0.5]))


# -- IQL's U-maze (dissertation ch. 8.4.1, Figure 39) -------------------------------------------------------
# A U-shaped corridor: start at the top left, goal at the bottom left, walls between the arms.
UMAZE = ["S....",
         "####.",
         "G...."]
MOVES = [(-1, 0), (1, 0), (0, -1), (0, 1)]
# "With a probability of 0.25, the agent transitions to a random state": here, to a random
# neighbouring state (a uniformly random move replaces the commanded one).
P_RANDOM, GAMMA, GOAL_REWARD = 0.25, 0.9, 10.0


def _umaze():
    cells = [(r, c) for r, row in enumerate(UMAZE) for c, ch in enumerate(row) if ch != "#"]
    index = {cell: i for i, cell in enumerate(cells)}
    start = index[next((r, c) for r, row in enumerate(UMAZE) for c, ch in enumerate(row) if ch == "S")]
    goal = index[next((r, c) for r, row in enumerate(UMAZE) for c, ch in enumerate(row) if ch == "G")]

    def move(state: int, action: int) -> int:
        r, c = cells[state]
        nr, nc = r + MOVES[action][0], c + MOVES[action][1]
        return index.get((nr, nc), state)

    return cells, start, goal, move


def _umaze_optimal_values():
    """Value iteration on the true MDP: the commanded move w.p. 0.75, a uniformly random move w.p. 0.25."""
    cells, _, goal, move = _umaze()
    n = len(cells)
    v = np.zeros(n)
    for _ in range(500):
        q = np.zeros((n, 4))
        for s in range(n):
            if s == goal:
                continue
            for a in range(4):
                outcomes = [(1 - P_RANDOM, move(s, a))] + [(P_RANDOM / 4, move(s, b)) for b in range(4)]
                q[s, a] = sum(p * ((GOAL_REWARD if t == goal else 0.0) + GAMMA * (0.0 if t == goal else v[t]))
                              for p, t in outcomes)
        v = q.max(1)
    return v


def _umaze_dataset(rng):
    """1 optimal and 99 uniformly random trajectories (dissertation: same mix)."""
    cells, start, goal, move = _umaze()
    n = len(cells)
    optimal_policy = _umaze_optimal_values()
    rows = []
    for episode in range(100):
        s = start
        for _ in range(30):
            if episode == 0:  # the optimal trajectory: greedy on the optimal values, deterministic moves
                a = int(np.argmax([optimal_policy[move(s, a)] if move(s, a) != goal else 1e9 for a in range(4)]))
                t = move(s, a)
            else:
                a = int(rng.integers(4))
                t = move(s, a if rng.random() >= P_RANDOM else int(rng.integers(4)))
            rows.append((s, a, GOAL_REWARD if t == goal else 0.0, t, t == goal))
            s = t
            if t == goal:
                break
    return rows, n


def _train_umaze_iql(rows, n, expectile, updates=1500, seed=0):
    torch.manual_seed(seed)
    eye_s, eye_a = torch.eye(n), torch.eye(4)
    s, a, r, t, d = (np.array(x) for x in zip(*rows))
    batch_all = Batch(eye_s[s], eye_a[a], torch.tensor(r, dtype=torch.float32), eye_s[t],
                      torch.tensor(d, dtype=torch.float32))
    # Small networks and fast target updates: values must travel 10 cells in few updates.
    config = make_config("iql", None, {"expectile": expectile, "discount": GAMMA, "hidden_dims": (64, 64),
                                       "learning_rate": 3e-3, "polyak": 0.1})
    iql = build_algorithm("iql", config, n, 4)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(updates):
        idx = torch.randint(len(rows), (256,), generator=generator)
        iql.update(Batch(batch_all.obs[idx], batch_all.action[idx], batch_all.reward[idx], batch_all.next_obs[idx],
                         batch_all.done[idx]))
    with torch.no_grad():
        values = iql.value(eye_s).numpy()
        q = torch.stack([iql.critic(eye_s, eye_a[k].expand(n, 4)).min(0).values for k in range(4)], 1).numpy()
    return values, q


def test_iql_umaze_recovers_near_optimal_values_where_one_step_does_not():
    rng = np.random.default_rng(0)
    rows, n = _umaze_dataset(rng)
    cells, start, goal, move = _umaze()
    optimal = _umaze_optimal_values()
    iql_values, iql_q = _train_umaze_iql(rows, n, expectile=0.95)
    sarsa_values, _ = _train_umaze_iql(rows, n, expectile=0.5)
    # "Far from the goal": the top arm of the U, at least 6 moves away.
    far = [i for i, (r, c) in enumerate(cells) if r == 0]
    iql_error = np.abs(iql_values[far] - optimal[far]).mean()
    sarsa_error = np.abs(sarsa_values[far] - optimal[far]).mean()
    assert iql_error < 0.5 * sarsa_error, (iql_error, sarsa_error)
    # The greedy policy of IQL's Q reaches the goal from the start (commanded moves only).
    state = start
    for _ in range(len(cells)):
        state = move(state, int(np.argmax(iql_q[state])))
        if state == goal:
            break
    assert state == goal


# -- CQL: conservative values on actions outside the data --------------------------------------------------
def test_cql_values_out_of_distribution_actions_below_dataset_actions():
    torch.manual_seed(0)
    n, obs_dim, act_dim = 2048, 4, 2
    obs = torch.randn(n, obs_dim)
    data_action = (0.5 + 0.05 * torch.randn(n, act_dim)).clamp(-1, 1)  # the data only shows a ~ 0.5
    reward = torch.ones(n)
    cql = build_algorithm("cql", make_config("cql", None, {**SMALL, "num_sampled_actions": 4}), obs_dim, act_dim)
    for _ in range(300):
        idx = torch.randint(n, (128,))
        cql.update(Batch(obs[idx], data_action[idx], reward[idx], obs[idx], torch.zeros(128)))
    with torch.no_grad():
        q_data = cql.critic(obs[:256], data_action[:256]).min(0).values.mean()
        q_ood = cql.critic(obs[:256], torch.full((256, act_dim), -0.9)).min(0).values.mean()
    assert q_ood < q_data - 1.0, (float(q_ood), float(q_data))


# -- AWR-style actors move toward positive-advantage actions ----------------------------------------------
def _two_action_batch(n=256):
    """One state; half the data takes a+ (reward +1), half a- (reward -1); both end the episode."""
    good, bad = torch.full((n // 2, 3), 0.5), torch.full((n // 2, 3), -0.5)
    obs = torch.zeros(n, 4)
    # Every other row from the "dataset", for the learners that treat demonstrations apart (ddpg-demos).
    return Batch(obs, torch.cat([good, bad]), torch.cat([torch.ones(n // 2), -torch.ones(n // 2)]), obs, torch.ones(n),
                 demo=(torch.arange(n) % 2 == 0).float())


@pytest.mark.parametrize("name", ["iql", "awac"])
def test_actor_update_moves_toward_positive_advantage(name):
    torch.manual_seed(0)
    batch = _two_action_batch()
    algorithm = build_algorithm(name, make_config(name, None, {**SMALL, "temperature": 3.0} if name == "iql" else SMALL),
                                4, 3)
    for _ in range(300):
        algorithm.update(batch)
    mean_action = algorithm.act(torch.zeros(1, 4))[0]
    assert (mean_action > 0.3).all(), mean_action
    # Plain behaviour cloning of the same data averages the two actions instead.
    bc = build_algorithm("bc", make_config("bc", None, SMALL), 4, 3)
    for _ in range(300):
        bc.update(batch)
    assert bc.act(torch.zeros(1, 4))[0].abs().max() < 0.1


def test_sac_learns_which_action_pays_and_its_actor_leaves_the_average():
    torch.manual_seed(0)
    batch = _two_action_batch()
    sac = build_algorithm("sac", make_config("sac", None, SMALL), 4, 3)
    for _ in range(300):
        sac.update(batch)
    obs = torch.zeros(1, 4)
    q_good, q_bad = (sac.critic(obs, torch.full((1, 3), v)).min(0).values.item() for v in (0.5, -0.5))
    assert q_good > 0.5 > -0.5 > q_bad  # the TD targets are the rewards: +1 and -1, episodes end
    # The actor climbs Q (unlike BC, which averages the two actions to 0), held back by the entropy bonus.
    assert (sac.act(obs)[0] > 0.2).all()


def test_bc_top_fraction_keeps_best_episodes():
    spec = get_algorithm("bc-10%")
    config = make_config("bc-10%")
    mask = spec.algorithm_class.select_episodes(config, np.arange(20.0))
    assert mask.sum() == 2 and mask[-2:].all()
    assert get_algorithm("bc").algorithm_class.select_episodes(make_config("bc"), np.arange(5.0)) is None


@pytest.mark.parametrize("name", ["bc", "awac", "iql", "cql", "sac", "ddpg-demos", "bc-her", "td3"])
def test_checkpoint_state_round_trip(name):
    torch.manual_seed(0)
    batch = _two_action_batch(64)
    first = build_algorithm(name, make_config(name, None, SMALL), 4, 3)
    for _ in range(3):
        first.update(batch)
    second = build_algorithm(name, make_config(name, None, SMALL), 4, 3)
    second.load_checkpoint_state(first.checkpoint_state())
    torch.manual_seed(1)
    a = first.update(batch)
    torch.manual_seed(1)
    b = second.update(batch)
    assert second.updates == first.updates == 4
    for key in a:
        assert torch.allclose(a[key], b[key]), key


# -- replay: mixing and relabeling ------------------------------------------------------------------------
def _goal_buffer(lengths=(4, 6)):
    n = sum(lengths)
    state = np.arange(n, dtype=np.float32)[:, None]
    achieved = np.arange(n, dtype=np.float32)[:, None] + 100  # next_achieved of row i is 100 + i
    return TransitionBuffer.from_arrays(state, state + 1, np.zeros((n, 1)), np.zeros(n), np.zeros(n),
                                        np.array(lengths), goal=np.full((n, 1), -1.0), next_achieved=achieved)


def test_future_relabeling_stays_in_the_episode_and_recomputes_rewards():
    buffer = _goal_buffer()

    def reward(achieved, goal):
        hit = (np.abs(achieved - goal) < 0.5).all(-1).astype(np.float32)
        return hit, np.zeros_like(hit)

    replay = Replay(buffer, relabel=RelabelShares(0.0, 1.0, 0.0, 0.0), goal_reward=reward, seed=0)
    for _ in range(20):
        batch = replay.sample(64)
        row = batch.obs[:, 0].long()
        goal_row = (batch.obs[:, 1] - 100).long()
        episode_end = torch.where(row < 4, 3, 9)
        assert ((goal_row >= row) & (goal_row <= episode_end)).all()
        assert torch.equal(batch.reward, (goal_row == row).float())
    final = Replay(buffer, relabel=RelabelShares(0.0, 0.0, 1.0, 0.0), goal_reward=reward, seed=0).sample(64)
    assert torch.equal(final.obs[:, 1] - 100, torch.where(final.obs[:, 0] < 4, 3.0, 9.0))
    kept = Replay(buffer, relabel=RelabelShares(1.0, 0.0, 0.0, 0.0), goal_reward=reward, seed=0).sample(64)
    assert (kept.obs[:, 1] == -1).all() and (kept.reward == 0).all()
    index = Replay(buffer, relabel=RelabelShares(0.0, 1.0, 0.0, 0.0), goal_reward="index", seed=0).sample(256)
    reached = (index.obs[:, 1] - 100) == index.obs[:, 0]
    assert torch.equal(index.reward, reached.float() - 1) and torch.equal(index.done, reached.float())


def test_online_fraction_and_uniform_mixing():
    offline = TransitionBuffer.from_arrays(np.zeros((900, 1)), np.zeros((900, 1)), np.zeros((900, 1)), np.zeros(900),
                                           np.zeros(900), np.array([900]))
    online = TransitionBuffer(100, 1, 1)
    for _ in range(100):
        online.add(np.ones(1), np.zeros(1), 0.0, np.ones(1), False)
    fixed = Replay(offline, online, online_fraction=0.5, seed=0).sample(256)
    assert fixed.obs[:, 0].mean() == 0.5
    uniform = torch.cat([Replay(offline, online, online_fraction=None, seed=s).sample(256).obs[:, 0] for s in range(20)])
    assert abs(float(uniform.mean()) - 0.1) < 0.02  # 100 of 1000 rows are online


def test_online_buffer_tracks_episode_ends():
    buffer = TransitionBuffer(10, 1, 1, goal_dim=1)
    for i in range(3):
        buffer.add(np.zeros(1), np.zeros(1), 0.0, np.zeros(1), False, np.zeros(1), np.full(1, i))
    assert buffer.episode_end[:3].tolist() == [2, 2, 2]
    buffer.end_episode()
    buffer.add(np.zeros(1), np.zeros(1), 0.0, np.zeros(1), False, np.zeros(1), np.zeros(1))
    assert buffer.episode_end[:4].tolist() == [2, 2, 2, 3]
    restored = TransitionBuffer(10, 1, 1, goal_dim=1)
    restored.load_state_dict(buffer.state_dict())
    assert restored.size == 4 and torch.equal(restored.next_achieved[:4], buffer.next_achieved[:4])
    # A checkpoint taken between storing a step and counting it keeps the completed steps only.
    restored.truncate(2)
    assert restored.size == 2 and restored.episode_end[:2].tolist() == [1, 1]
    restored.add(np.zeros(1), np.zeros(1), 0.0, np.zeros(1), False, np.zeros(1), np.zeros(1))
    assert restored.size == 3 and restored.episode_end[2].item() == 2  # a new episode starts after them
